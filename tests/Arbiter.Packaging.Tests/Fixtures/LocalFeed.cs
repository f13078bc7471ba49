using System.Diagnostics;
using System.IO.Compression;
using System.Text.RegularExpressions;
using System.Xml.Linq;

namespace Arbiter.Packaging.Tests.Fixtures;

/// <summary>
/// The packages as users get them: the feed scripts/test.sh packed (ARBITER_FEED), or, when the test
/// runs on its own, a feed this fixture packs with scripts/pack.sh. Gives each app a private NuGet
/// cache, so a package repacked at the same version is never served stale from ~/.nuget/packages.
/// </summary>
public sealed partial class LocalFeed : IAsyncLifetime
{
    /// <summary>The feed folder.</summary>
    public string Folder { get; private set; } = "";

    /// <summary>The version every Arbiter package in the feed has.</summary>
    public string Version { get; private set; } = "";

    /// <summary>A scratch folder removed after the tests, with a nuget.config that adds the feed.</summary>
    public string Work { get; } = Directory.CreateTempSubdirectory("arbiter-packaging-").FullName;

    /// <summary>What packing took (zero when the feed was already packed).</summary>
    public TimeSpan PackTime { get; private set; }

    /// <summary>The environment for the `dotnet` commands a user would type.</summary>
    public IReadOnlyDictionary<string, string> Environment => new Dictionary<string, string>
    {
        ["NUGET_PACKAGES"] = Path.Combine(Work, "nuget-packages"),
        ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1",
        ["DOTNET_NOLOGO"] = "1",
        ["DOTNET_SKIP_FIRST_TIME_EXPERIENCE"] = "1",
        // No MSBuild server or reused nodes left running after a test.
        ["DOTNET_CLI_DO_NOT_USE_MSBUILD_SERVER"] = "1",
        ["MSBUILDDISABLENODEREUSE"] = "1",
    };

    /// <inheritdoc />
    public async Task InitializeAsync()
    {
        var given = System.Environment.GetEnvironmentVariable("ARBITER_FEED");
        if (!string.IsNullOrEmpty(given) && Directory.Exists(given) && Directory.EnumerateFiles(given, "Arbiter.Client.*.nupkg").Any())
        {
            Folder = Path.GetFullPath(given);
        }
        else
        {
            Folder = Path.Combine(Work, "feed");
            var started = Stopwatch.StartNew();
            var environment = new Dictionary<string, string>(Environment) { ["ARBITER_FEED"] = Folder };
            environment.Remove("NUGET_PACKAGES"); // packing restores the repo's own dependencies from the usual cache
            await CommandRunner.RunAsync("bash", [Path.Combine(RepositoryLayout.Root, "scripts", "pack.sh")], RepositoryLayout.Root, environment, TimeSpan.FromMinutes(15));
            PackTime = started.Elapsed;
        }

        var client = Directory.EnumerateFiles(Folder, "Arbiter.Client.*.nupkg").Single(f => !f.EndsWith(".snupkg", StringComparison.Ordinal));
        Version = ClientVersion().Match(Path.GetFileName(client)).Groups[1].Value;

        // The user's own sources (the NuGet registry) stay; the feed is added beside them.
        await File.WriteAllTextAsync(Path.Combine(Work, "nuget.config"), $"""
            <?xml version="1.0" encoding="utf-8"?>
            <configuration>
              <packageSources>
                <add key="arbiter-local-feed" value="{Folder}" />
              </packageSources>
            </configuration>
            """);
    }

    /// <inheritdoc />
    public Task DisposeAsync()
    {
        Directory.Delete(Work, recursive: true);
        return Task.CompletedTask;
    }

    /// <summary>The path of package <paramref name="id"/> in the feed (<c>.nupkg</c> or <c>.snupkg</c>).</summary>
    public string PackagePath(string id, string extension = ".nupkg") => Path.Combine(Folder, $"{id}.{Version}{extension}");

    /// <summary>The file names inside package <paramref name="id"/>.</summary>
    public IReadOnlyList<string> Entries(string id)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        return [.. zip.Entries.Select(e => e.FullName)];
    }

    /// <summary>The .nuspec of package <paramref name="id"/>.</summary>
    public XDocument Nuspec(string id)
    {
        using var zip = ZipFile.OpenRead(PackagePath(id));
        var entry = zip.Entries.Single(e => e.FullName.EndsWith(".nuspec", StringComparison.Ordinal) && !e.FullName.Contains('/', StringComparison.Ordinal));
        using var stream = entry.Open();
        return XDocument.Load(stream);
    }

    /// <summary>The package ids <paramref name="id"/>'s .nuspec depends on, over all its target frameworks.</summary>
    public IReadOnlyList<string> Dependencies(string id) =>
        [.. Nuspec(id).Descendants().Where(e => e.Name.LocalName == "dependency")
            .Select(e => (string)e.Attribute("id")!).Distinct().Order(StringComparer.Ordinal)];

    [GeneratedRegex(@"^Arbiter\.Client\.(\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?)\.nupkg$")]
    private static partial Regex ClientVersion();
}

/// <summary>The tests that share one packed feed run one after another.</summary>
[CollectionDefinition(Name)]
public sealed class LocalFeedCollection : ICollectionFixture<LocalFeed>
{
    /// <summary>The collection's name.</summary>
    public const string Name = "local feed";
}
