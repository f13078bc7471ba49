namespace Arbiter.Compatibility.Tests.Fixtures;

/// <summary>
/// The Arbiter server (<c>arbiter.dll serve</c>) built next to this test assembly, same configuration.
/// </summary>
/// <param name="name">Member name (and data directory prefix).</param>
/// <param name="extraArguments">Flags appended to <c>serve</c>'s usual ones.</param>
/// <param name="environment">Extra environment variables for the process (e.g. a GC heap limit).</param>
public sealed class ArbiterProcess(string name = "arbiter-compat", IReadOnlyList<string>? extraArguments = null, IReadOnlyDictionary<string, string>? environment = null) : ServerProcess(name)
{
    protected override string FileName => "dotnet";

    protected override IReadOnlyDictionary<string, string>? Environment => environment;

    protected override IEnumerable<string> Arguments(bool isRestart) =>
    [
        DllPath,
        "serve",
        "--name", Name,
        "--data-dir", DataDir,
        "--listen-client-urls", Endpoint,
        "--advertise-client-urls", Endpoint,
        "--log-level", "info",
        .. extraArguments ?? [],
    ];

    /// <summary>
    /// tests/Arbiter.Compatibility.Tests/bin/{Configuration}/net10.0/ → src/Arbiter.Cli/bin/{Configuration}/net10.0/arbiter.dll.
    /// </summary>
    /// <remarks>ARBITER_TEST_SERVER_DLL names another build to run instead (e.g. an older one, to show that a test catches the defect it guards).</remarks>
    public static string DllPath
    {
        get
        {
            if (System.Environment.GetEnvironmentVariable("ARBITER_TEST_SERVER_DLL") is { Length: > 0 } chosen)
            {
                return File.Exists(chosen) ? chosen : throw new FileNotFoundException($"ARBITER_TEST_SERVER_DLL names {chosen}, which does not exist", chosen);
            }

            var testDir = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
            var framework = testDir.Name;
            var configuration = testDir.Parent!.Name;
            var repoRoot = testDir.Parent.Parent!.Parent!.Parent!.Parent!.FullName;
            var path = Path.Combine(repoRoot, "src", "Arbiter.Cli", "bin", configuration, framework, "arbiter.dll");
            return File.Exists(path)
                ? path
                : throw new FileNotFoundException($"arbiter.dll not found at {path}; build src/Arbiter.Cli in {configuration}", path);
        }
    }
}
