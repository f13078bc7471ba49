namespace Arbiter.Storage.CrashHost;

/// <summary>
/// Deterministic contents for record and snapshot payloads, so the test can check what the
/// killed host wrote without talking to it. Also compiled into the test project.
/// </summary>
public static class CrashPayload
{
    public const int RecordSizeBytesMax = 600;

    public static byte[] ForRecord(long index)
    {
        ulong state = (ulong)index * 0x9E37_79B9_7F4A_7C15UL;
        int length = (int)(Next(ref state) % RecordSizeBytesMax);
        byte[] payload = new byte[length];
        for (int i = 0; i < length; i++)
        {
            payload[i] = (byte)Next(ref state);
        }

        return payload;
    }

    public static byte[] ForSnapshot(long index)
    {
        byte[] payload = new byte[1024 + (index % 512)];
        ulong state = ~(ulong)index;
        for (int i = 0; i < payload.Length; i++)
        {
            payload[i] = (byte)Next(ref state);
        }

        return payload;
    }

    private static ulong Next(ref ulong state)
    {
        // splitmix64: stable across runtimes, unlike System.Random's algorithm choice.
        state += 0x9E37_79B9_7F4A_7C15UL;
        ulong z = state;
        z = (z ^ (z >> 30)) * 0xBF58_476D_1CE4_E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D0_49BB_1331_11EBUL;
        return z ^ (z >> 31);
    }
}
