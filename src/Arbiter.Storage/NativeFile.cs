using System.Runtime.InteropServices;
using Microsoft.Win32.SafeHandles;

namespace Arbiter.Storage;

/// <summary>
/// File system calls .NET does not expose: directory fsync, fdatasync and size-extending
/// preallocation. Linux gets the native calls; other systems fall back to what .NET offers.
/// </summary>
internal static partial class NativeFile
{
    private const int ReadOnlyFlag = 0;
    private const int CloseOnExecLinuxFlag = 0x80000;

    private const int InterruptedErrno = 4; // EINTR
    private const int InvalidArgumentErrno = 22; // EINVAL: e.g. a file system that rejects the range
    private const int FileTooLargeErrno = 27; // EFBIG
    private const int NoSpaceErrno = 28; // ENOSPC
    private const int NotImplementedErrno = 38; // ENOSYS
    private const int NotSupportedErrno = 95; // EOPNOTSUPP (= ENOTSUP on Linux)
    private const int InterruptedRetriesMax = 8;

    /// <summary>
    /// Fsyncs a directory so that file creations, renames and deletions in it survive a power loss.
    /// Windows has no equivalent and needs none.
    /// </summary>
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

    /// <summary>
    /// Makes the file's data durable: <c>fdatasync</c> on Linux, which also commits the file size
    /// (and block allocation) when it changed but skips timestamps, so a write into preallocated space
    /// does not wait for a journal commit of metadata nobody needs. Elsewhere a full fsync.
    /// </summary>
    public static void DataSync(SafeFileHandle handle)
    {
        if (!OperatingSystem.IsLinux())
        {
            RandomAccess.FlushToDisk(handle);
            return;
        }

        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle.DangerousGetHandle();
            int result;
            int errno;
            do
            {
                result = Fdatasync(fd);
                errno = result == 0 ? 0 : Marshal.GetLastPInvokeError();
            }
            while (errno == InterruptedErrno);

            if (result != 0)
            {
                throw new IOException($"fdatasync failed (errno {errno}).");
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// Extends the file to <paramref name="lengthBytes"/> with allocated, zero-reading space
    /// (<c>fallocate</c> mode 0: unlike .NET's <c>preallocationSize</c>, which keeps the size, the
    /// file size changes now, so later appends inside it do not change it). Returns false where that
    /// is not available (not 64-bit Linux, file system without fallocate, no space to reserve); the
    /// file then grows with each write as before, which is slower to sync but just as correct.
    /// A file already at least that long is left alone.
    /// </summary>
    /// <exception cref="IOException">fallocate failed for a reason other than lack of support or space.</exception>
    public static bool TryPreallocate(SafeFileHandle handle, long lengthBytes)
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess)
        {
            return false; // off_t is 64-bit only in 64-bit processes; not worth the fallocate64 dance
        }

        if (RandomAccess.GetLength(handle) >= lengthBytes)
        {
            return true;
        }

        bool added = false;
        handle.DangerousAddRef(ref added);
        try
        {
            int fd = (int)handle.DangerousGetHandle();
            for (int attempt = 0; ; attempt++)
            {
                if (Fallocate(fd, 0, 0, lengthBytes) == 0)
                {
                    return true;
                }

                int errno = Marshal.GetLastPInvokeError();
                switch (errno)
                {
                    case InterruptedErrno when attempt < InterruptedRetriesMax:
                        continue;
                    case InterruptedErrno:
                    case InvalidArgumentErrno:
                    case FileTooLargeErrno:
                    case NoSpaceErrno:
                    case NotImplementedErrno:
                    case NotSupportedErrno:
                        return false;
                    default:
                        throw new IOException($"fallocate of {lengthBytes} bytes failed (errno {errno}).");
                }
            }
        }
        finally
        {
            if (added)
            {
                handle.DangerousRelease();
            }
        }
    }

    [LibraryImport("libc", EntryPoint = "open", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Open(string path, int flags);

    [LibraryImport("libc", EntryPoint = "fsync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Fsync(int fd);

    [LibraryImport("libc", EntryPoint = "fdatasync", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Fdatasync(int fd);

    [LibraryImport("libc", EntryPoint = "fallocate", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Fallocate(int fd, int mode, long offset, long length);

    [LibraryImport("libc", EntryPoint = "close", SetLastError = true)]
    [DefaultDllImportSearchPaths(DllImportSearchPath.SafeDirectories)]
    private static partial int Close(int fd);
}
