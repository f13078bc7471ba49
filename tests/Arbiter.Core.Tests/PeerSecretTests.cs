using Arbiter.Protocol.Internal;
using Google.Protobuf;

namespace Arbiter.Core.Tests;

/// <summary>The cluster's peer secret in the core: set once through the log, first one wins, in snapshots (format 4) and the state hash, forgotten on restore.</summary>
public sealed class PeerSecretTests
{
    private static ByteString Secret(byte fill) => ByteString.CopyFrom(Enumerable.Repeat(fill, StateMachine.PeerSecretSizeBytes).ToArray());

    private static Command Set(ByteString secret) => new() { PeerSecretSet = new PeerSecretSet { Secret = secret } };

    [Fact]
    public void The_first_secret_applied_wins_and_a_later_one_changes_nothing()
    {
        var h = new Harness();
        Assert.True(h.Sm.PeerSecret.IsEmpty);
        Assert.True(h.Apply(Set(Secret(1))).PeerSecretSet.Set);
        var revision = h.Sm.Revision;
        var hash = h.Sm.Hash();
        Assert.False(h.Apply(Set(Secret(2))).PeerSecretSet.Set);
        Assert.Equal(Secret(1), h.Sm.PeerSecret);
        Assert.Equal(hash, h.Sm.Hash());
        Assert.Equal(revision, h.Sm.Revision); // no revision, no event: invisible to clients
        h.Sm.VerifyIntegrity();
    }

    [Fact]
    public void A_secret_of_the_wrong_length_is_refused_whole()
    {
        var h = new Harness();
        foreach (var bad in new[] { ByteString.Empty, ByteString.CopyFrom(new byte[31]), ByteString.CopyFrom(new byte[33]) })
        {
            var result = h.Apply(Set(bad));
            Assert.Equal(CommandResult.ResultOneofCase.Error, result.ResultCase);
            Assert.Equal(CoreErrors.InvalidPeerSecret.Message, result.Error.Message);
            Assert.True(h.Sm.PeerSecret.IsEmpty);
        }
    }

    [Fact]
    public void The_secret_is_in_the_state_hash_and_results_never_carry_it()
    {
        var a = new Harness();
        var b = new Harness();
        Assert.Equal(a.Sm.Hash(), b.Sm.Hash());
        var result = a.Apply(Set(Secret(7)));
        Assert.DoesNotContain(Secret(7).ToBase64(), result.ToString(), StringComparison.Ordinal);
        Assert.NotEqual(a.Sm.Hash(), b.Sm.Hash());
        b.Apply(Set(Secret(8)));
        Assert.NotEqual(a.Sm.Hash(), b.Sm.Hash());
    }

    [Fact]
    public void Snapshots_keep_the_secret_and_restore_can_forget_it()
    {
        var h = new Harness();
        h.Put("k", "v");
        h.Apply(Set(Secret(3)));
        using var stream = new MemoryStream();
        h.Sm.WriteSnapshot(stream);
        stream.Position = 0;
        var restored = StateMachine.ReadSnapshot(stream);
        Assert.Equal(Secret(3), restored.PeerSecret);
        Assert.Equal(h.Sm.Hash(), restored.Hash());
        restored.ForgetPeerSecret();
        Assert.True(restored.PeerSecret.IsEmpty);
        Assert.NotEqual(h.Sm.Hash(), restored.Hash());
    }

    [Fact]
    public void Snapshots_of_format_three_load_without_a_secret_and_a_damaged_length_is_refused()
    {
        var h = new Harness();
        h.Put("k", "v");
        using var stream = new MemoryStream();
        h.Sm.WriteSnapshot(stream);
        var bytes = stream.ToArray();

        // Format 4 = format 3 + a length-prefixed peer secret (empty here: 4 zero bytes); formats 5
        // and 6 add the CRDT replica table and the pending member adds after it (empty too), before the hash.
        var v3 = bytes[..^16].Concat(bytes[^4..]).ToArray();
        BitConverter.GetBytes(3).CopyTo(v3, StateSnapshot.Magic.Length);
        var restored = StateMachine.ReadSnapshot(new MemoryStream(v3));
        Assert.True(restored.PeerSecret.IsEmpty);
        Assert.Equal(h.Sm.Hash(), restored.Hash());

        // A secret length that is neither 0 nor 32 is refused.
        var damaged = (byte[])bytes.Clone();
        BitConverter.GetBytes(5).CopyTo(damaged, bytes.Length - 16);
        Assert.Throws<InvalidDataException>(() => StateMachine.ReadSnapshot(new MemoryStream(damaged)));
    }
}
