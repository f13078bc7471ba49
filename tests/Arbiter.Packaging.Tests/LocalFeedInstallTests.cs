using System.Diagnostics;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Packaging.Tests.Fixtures;

namespace Arbiter.Packaging.Tests;

/// <summary>
/// Installs from the local feed as a user would, on this machine with nothing but the .NET SDK:
/// the `arbiter` tool (`dotnet tool install`, then `arbiter serve` until healthy), a fresh
/// `dotnet new console` app and a fresh `dotnet new web` app with the packages added by
/// `dotnet add package`, each running a lock, an election and a watch against that server.
/// </summary>
[Collection(LocalFeedCollection.Name)]
public sealed class LocalFeedInstallTests(LocalFeed feed, ITestOutputHelper output)
{
    private static readonly TimeSpan CommandTimeout = TimeSpan.FromMinutes(5);

    private static readonly string[] Libraries = ["Arbiter.Protocol", "Arbiter.Client", "Arbiter.Recipes", "Arbiter.Hosting", "Arbiter.Embedded"];

    [Fact]
    public void Every_package_carries_its_readme_docs_symbols_and_source_metadata()
    {
        foreach (var id in Libraries)
        {
            var entries = feed.Entries(id);
            Assert.Contains("README.md", entries);
            Assert.Contains($"lib/net10.0/{id}.dll", entries);
            Assert.Contains($"lib/net10.0/{id}.xml", entries);
            Assert.True(File.Exists(feed.PackagePath(id, ".snupkg")), $"{id} has no symbol package");
            var metadata = feed.Nuspec(id).Descendants().ToList();
            Assert.Contains(metadata, e => e.Name.LocalName == "license" && (string?)e.Attribute("type") == "expression" && e.Value.Length > 0);
            Assert.Contains(metadata, e => e.Name.LocalName == "readme" && e.Value == "README.md");
            Assert.Contains(metadata, e => e.Name.LocalName == "repository" && (string?)e.Attribute("type") == "git");
            Assert.Contains(metadata, e => e.Name.LocalName == "version" && e.Value == feed.Version);
        }

        var tool = feed.Entries("Arbiter.Cli");
        Assert.Contains("tools/net10.0/any/arbiter.dll", tool);
        Assert.Contains("tools/net10.0/any/DotnetToolSettings.xml", tool);
        Assert.Contains(feed.Nuspec("Arbiter.Cli").Descendants(), e => e.Name.LocalName == "packageType" && (string?)e.Attribute("name") == "DotnetTool");
    }

    [Fact]
    public void The_packed_client_depends_on_grpc_and_protobuf_only()
    {
        Assert.Equal(["Arbiter.Protocol"], feed.Dependencies("Arbiter.Client"));
        var protocol = feed.Dependencies("Arbiter.Protocol");
        Assert.True(protocol.All(ClientDependencyTests.GrpcAndProtobuf.Contains), $"Arbiter.Protocol's package depends on {string.Join(", ", protocol)}");
        Assert.Equal(["Arbiter.Client", "Arbiter.Node"], feed.Dependencies("Arbiter.Embedded"));
        foreach (var id in new[] { "Arbiter.Recipes", "Arbiter.Hosting" })
        {
            var engine = feed.Dependencies(id).Where(ClientDependencyTests.IsEngine).ToList();
            Assert.True(engine.Count == 0, $"{id}'s package depends on {string.Join(", ", engine)}");
        }
    }

    [Fact]
    public async Task The_tool_a_console_app_and_a_web_app_run_a_lock_an_election_and_a_watch_from_the_feed()
    {
        var started = Stopwatch.StartNew();
        output.WriteLine(feed.PackTime > TimeSpan.Zero ? $"packed {feed.Folder} in {feed.PackTime.TotalSeconds:0} s" : $"feed {feed.Folder} (packed by scripts/test.sh)");

        // The tool: install from the feed, serve, wait until healthy.
        var tools = Path.Combine(feed.Work, "tools");
        await Run("dotnet", ["tool", "install", "--tool-path", tools, "--add-source", feed.Folder, "--version", feed.Version, "Arbiter.Cli"], feed.Work);
        var endpoint = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        await using var server = ManagedProcess.Start(
            Path.Combine(tools, "arbiter"),
            ["serve", "--name", "packaged", "--data-dir", Path.Combine(feed.Work, "data"), "--listen-client-urls", endpoint, "--advertise-client-urls", endpoint],
            "arbiter (installed tool)");
        await WaitHealthyAsync(endpoint + "/health", server, TimeSpan.FromSeconds(90));
        output.WriteLine($"installed tool serves {endpoint} ({started.Elapsed.TotalSeconds:0} s)");

        // A console app: the recipes package (the client comes with it).
        var console = await NewAppAsync("console", "PackagedConsole", "Arbiter.Recipes", Path.Combine("Apps", "ConsoleApp", "Program.cs"));
        var printed = await Run("dotnet", ["run", "-c", "Release", "--no-launch-profile", "--", endpoint, "console"], console);
        Assert.Matches(@"ok lock fencing-token=[1-9]\d*", printed);
        Assert.Contains("ok election leader=console-app", printed, StringComparison.Ordinal);
        Assert.Contains("ok watch value=hello from the console app", printed, StringComparison.Ordinal);
        output.WriteLine($"console app done ({started.Elapsed.TotalSeconds:0} s)");

        // A web app: the hosting integration from configuration, its health check, lock provider and leader service.
        var web = await NewAppAsync("web", "PackagedWeb", "Arbiter.Hosting", Path.Combine("Apps", "WebApp", "Program.cs"));
        await Run("dotnet", ["build", "-c", "Release"], web);
        var url = $"http://127.0.0.1:{PortAllocator.FreePort()}";
        await using var app = ManagedProcess.Start(
            "dotnet",
            [Path.Combine(web, "bin", "Release", "net10.0", "PackagedWeb.dll"), "--urls", url, "--Arbiter:Endpoints:0", endpoint, "--Prefix", "web"],
            "web app",
            feed.Environment);
        await WaitHealthyAsync(url + "/health", app, TimeSpan.FromSeconds(90));
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(60) };
        Assert.Equal("ok lock", await http.GetStringAsync(url + "/lock"));
        Assert.Equal("ok election leader=web-app ran=yes", await WaitForAsync(http, url + "/election", "ok election leader=web-app ran=yes", app, TimeSpan.FromSeconds(60)));
        Assert.Equal("ok watch value=hello from the web app", await http.GetStringAsync(url + "/watch"));
        output.WriteLine($"web app done ({started.Elapsed.TotalSeconds:0} s)");
    }

    private async Task<string> NewAppAsync(string template, string name, string package, string programSource)
    {
        var dir = Path.Combine(feed.Work, name);
        await Run("dotnet", ["new", template, "-o", dir, "-n", name], feed.Work);
        await Run("dotnet", ["add", "package", package, "--version", feed.Version], dir);
        File.Copy(Path.Combine(AppContext.BaseDirectory, programSource), Path.Combine(dir, "Program.cs"), overwrite: true);
        return dir;
    }

    private async Task<string> Run(string fileName, string[] arguments, string workingDirectory)
    {
        var printed = await CommandRunner.RunAsync(fileName, arguments, workingDirectory, feed.Environment, CommandTimeout);
        output.WriteLine(printed);
        return printed;
    }

    private static async Task WaitHealthyAsync(string url, ManagedProcess process, TimeSpan timeout)
    {
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (process.HasExited)
            {
                Assert.Fail($"{process.DisplayName} exited ({process.ExitCode}):\n{process.Log}");
            }

            try
            {
                using var response = await http.GetAsync(url);
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }
            catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
            {
                // Not listening yet.
            }

            Assert.True(deadline.Elapsed < timeout, $"{url} not healthy within {timeout.TotalSeconds:0} s:\n{process.Log}");
            await Task.Delay(200);
        }
    }

    private static async Task<string> WaitForAsync(HttpClient http, string url, string expected, ManagedProcess process, TimeSpan timeout)
    {
        // The leader service campaigns in the background after start-up: wait for it to have run.
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var answer = await http.GetStringAsync(url);
            if (answer == expected || deadline.Elapsed > timeout)
            {
                return answer + (answer == expected ? "" : "\n" + process.Log);
            }

            await Task.Delay(200);
        }
    }
}
