using Arbiter.Compatibility.Tests.Fixtures;

namespace Arbiter.Recipes.Tests.Processes;

/// <summary>Starts the test host (tests/Arbiter.Recipes.TestHost) as a child process.</summary>
public static class HostProcess
{
    /// <summary>tests/Arbiter.Recipes.Tests/bin/{Configuration}/net10.0/ → tests/Arbiter.Recipes.TestHost/bin/{Configuration}/net10.0/.</summary>
    public static string DllPath
    {
        get
        {
            var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var framework = testDir.Name;
            var configuration = testDir.Parent!.Name;
            var testsRoot = testDir.Parent.Parent!.Parent!.Parent!.FullName;
            var path = Path.Combine(testsRoot, "Arbiter.Recipes.TestHost", "bin", configuration, framework, "Arbiter.Recipes.TestHost.dll");
            return File.Exists(path) ? path : throw new FileNotFoundException($"test host not built at {path}", path);
        }
    }

    public static ManagedProcess Start(string name, params string[] arguments) =>
        ManagedProcess.Start("dotnet", [DllPath, .. arguments], name, redirectStdin: true);

    /// <summary>The next stdout line starting with <paramref name="prefix"/>; throws with the child's log after the deadline (the suite's default when none is given).</summary>
    public static Task<string> ExpectLineAsync(this ManagedProcess process, string prefix, TimeSpan? timeout = null)
    {
        ArgumentNullException.ThrowIfNull(process);
        return process.ExpectLineAsync(prefix, timeout ?? TestSupport.Deadline);
    }
}
