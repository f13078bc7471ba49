using System.Runtime.InteropServices;

namespace Arbiter.Storage;

/// <summary>
/// Fsyncs a directory so that file creations, renames and deletions in it survive a power loss.
/// .NET has no API for this, hence the P/Invoke; Windows has no equivalent and needs none.
/// </summary>
internal static partial class DirectorySync
{
    private const int ReadOnlyFlag = 0;
    private const int CloseOnExecLinuxFlag = 0x80000;

    public static void Fsync(string directoryPath)
    {
        if (OperatingSystem.IsWindows())
        {
            return;
        }

        // O_CLOEXEC so that a child process started meanwhile does not inherit the descriptor.
        int flags = ReadOnlyFlag | (OperatingSystem.IsLinux() ? CloseOnExecLinuxFlag : 0);
        int fd = Open(directoryPath, flags);
        if (fd < 0)
        {
            throw new IOException($"Cannot open directory '{directoryPath}' to fsync it (errno {Marshal.GetLastPInvokeError()}).");
        }

        try
        {
            if (Fsync(fd) != 0)
            {
                throw new IOException($"fsync of directory '{directoryPath}' failed (errno {Marshal.GetLastPInvokeError()}).");
            }
        }
        finally
        {
            _ = Close(fd);
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Close(int fd);
}
