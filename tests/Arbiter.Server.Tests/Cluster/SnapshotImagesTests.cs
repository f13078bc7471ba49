using System.Security.Cryptography;
using Arbiter.Node.Cluster;

namespace Arbiter.Server.Tests.Cluster;

/// <summary>The tickets DotNext ships instead of state images, and the images kept beside them.</summary>
public sealed class SnapshotImagesTests : IDisposable
{
    private readonly DirectoryInfo _root = Directory.CreateTempSubdirectory("arbiter-images-");

    [Fact]
    public void A_ticket_round_trips_and_a_full_image_is_not_a_ticket()
    {
        var ticket = new SnapshotTicket(1000, 7, 123, SHA256.HashData("image"u8));
        Assert.Equal(ticket, SnapshotTicket.TryParse(ticket.ToBytes()));
        Assert.Null(SnapshotTicket.TryParse("ARBSNAP1 a full image of the state"u8));

        var file = new FileInfo(Path.Combine(_root.FullName, "1000-7"));
        File.WriteAllBytes(file.FullName, ticket.ToBytes());
        Assert.Equal(ticket, SnapshotTicket.TryRead(file));
    }

    [Fact]
    public void A_ticket_with_its_writers_client_urls_round_trips_and_a_version_1_ticket_still_reads()
    {
        var ticket = new SnapshotTicket(1000, 7, 123, SHA256.HashData("image"u8)) { SourceClientUrls = "http://10.0.0.1:2379,https://10.0.0.1:2381" };
        var read = SnapshotTicket.TryParse(ticket.ToBytes());
        Assert.Equal(ticket, read);
        Assert.Equal("http://10.0.0.1:2379,https://10.0.0.1:2381", read!.SourceClientUrls);

        var file = new FileInfo(Path.Combine(_root.FullName, "1000-7"));
        File.WriteAllBytes(file.FullName, ticket.ToBytes());
        Assert.Equal(ticket.SourceClientUrls, SnapshotTicket.TryRead(file)!.SourceClientUrls);

        // A ticket written before version 2 (no source) reads as before, with no source.
        var old = new SnapshotTicket(1000, 7, 123, SHA256.HashData("image"u8)).ToBytes();
        Assert.Equal(SnapshotTicket.SizeBytes, old.Length);
        Assert.Null(SnapshotTicket.TryParse(old)!.SourceClientUrls);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("http://127.0.0.1:2379")]
    public void A_cut_ticket_is_refused_with_a_clear_error(string? source)
    {
        var bytes = new SnapshotTicket(1, 1, 1, new byte[32]) { SourceClientUrls = source }.ToBytes();
        var error = Assert.Throws<InvalidDataException>(() => SnapshotTicket.TryParse(bytes.AsSpan(0, bytes.Length - 1)));
        Assert.Contains("ticket", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_fetched_image_is_kept_only_when_it_is_the_one_its_ticket_names()
    {
        var images = new SnapshotImages(_root.FullName);
        var image = new byte[100_000];
        Random.Shared.NextBytes(image);
        var ticket = new SnapshotTicket(50, 2, image.Length, SHA256.HashData(image));

        var corrupt = (byte[])image.Clone();
        corrupt[^1] ^= 1;
        await Assert.ThrowsAsync<InvalidDataException>(() => images.StoreAsync(ticket, (stream, token) => stream.WriteAsync(corrupt, token).AsTask(), CancellationToken.None));
        await Assert.ThrowsAsync<InvalidDataException>(() => images.StoreAsync(ticket, (stream, token) => stream.WriteAsync(image.AsMemory(0, 10), token).AsTask(), CancellationToken.None));
        Assert.False(images.Has(ticket));
        Assert.Empty(_root.GetFiles()); // nothing half-written left behind

        await images.StoreAsync(ticket, (stream, token) => stream.WriteAsync(image, token).AsTask(), CancellationToken.None);
        Assert.True(images.Has(ticket));
        await using var stored = images.TryOpen(50, 2);
        Assert.NotNull(stored);
        Assert.Equal(SHA256.HashData(image), await SHA256.HashDataAsync(stored));
    }

    [Fact]
    public void A_written_image_is_streamed_to_its_file_and_its_ticket_names_its_length_and_hash()
    {
        var images = new SnapshotImages(_root.FullName);
        var image = new byte[300_000]; // several of the file's buffers
        Random.Shared.NextBytes(image);

        var ticket = images.Write(40, 3, stream =>
        {
            for (var offset = 0; offset < image.Length; offset += 7_000)
            {
                stream.Write(image.AsSpan(offset, Math.Min(7_000, image.Length - offset)));
            }
        });

        Assert.Equal((40L, 3L, (long)image.Length), (ticket.Index, ticket.Term, ticket.LengthBytes));
        Assert.Equal(SHA256.HashData(image), ticket.Sha256);
        Assert.True(images.Has(ticket));
        Assert.Equal(image, File.ReadAllBytes(images.PathOf(40, 3)));
    }

    [Fact]
    public void A_write_that_fails_halfway_leaves_no_image_or_temporary_file()
    {
        var images = new SnapshotImages(_root.FullName);

        Assert.Throws<IOException>(() => images.Write(60, 4, stream =>
        {
            stream.Write(new byte[100_000]);
            throw new IOException("disk gone");
        }));

        Assert.Null(images.TryOpen(60, 4));
        Assert.Empty(_root.GetFiles());
    }

    [Fact]
    public void Images_no_snapshot_names_are_deleted_once_older_than_the_newest()
    {
        var images = new SnapshotImages(_root.FullName);
        images.Write(10, 1, stream => stream.Write("a"u8));
        images.Write(20, 1, stream => stream.Write("b"u8));
        images.Write(30, 2, stream => stream.Write("c"u8));

        images.DeleteUnreferenced(keepFromIndex: 30, referenced: new HashSet<string> { "20-1" });

        Assert.Null(images.TryOpen(10, 1));
        Assert.NotNull(images.TryOpen(20, 1)?.DisposeAsync().AsTask());
        Assert.NotNull(images.TryOpen(30, 2)?.DisposeAsync().AsTask());
    }

    public void Dispose() => _root.Delete(recursive: true);
}
