using Arbiter.Client;
using Arbiter.Compatibility.Tests.Fixtures;
using Arbiter.Hosting;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;

namespace Arbiter.Recipes.Tests.Hosting;

/// <summary>
/// The live configuration source against a real <c>arbiter serve</c> process that is killed,
/// restarted, compacted behind the source's back, or not running at all when the source starts.
/// </summary>
public sealed class ConfigurationSourceProcessTests(ITestOutputHelper output) : IAsyncLifetime, IDisposable
{
    private const string Prefix = "app/";
    private readonly ArbiterProcess _server = new("config-source");
    private readonly CapturedLogs _logs = new();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync() => await _server.DisposeAsync();

    public void Dispose()
    {
        foreach (var (level, message) in _logs.Entries)
        {
            output.WriteLine($"{level}: {message}");
        }

        _logs.Dispose();
    }

    [Fact]
    public async Task Watch_interrupted_by_a_server_restart_delivers_the_next_change()
    {
        await _server.StartAsync();
        await using var writer = ArbiterClient.Connect(_server.Endpoint);
        await writer.PutAsync(Prefix + "Name", "one");
        await using var reader = ArbiterClient.Connect(_server.Endpoint);
        using var configuration = Build(reader, optional: false);
        Assert.Equal("one", configuration["Name"]);

        await _server.KillAsync();
        await _server.StartAsync(isRestart: true);
        await writer.PutAsync(Prefix + "Name", "two");
        await WaitForAsync(configuration, "Name", "two");

        // And it keeps going after that.
        await writer.PutAsync(Prefix + "Name", "three");
        await WaitForAsync(configuration, "Name", "three");
    }

    [Fact]
    public async Task Compaction_between_reads_restarts_from_a_fresh_read()
    {
        await _server.StartAsync();
        await using var writer = ArbiterClient.Connect(_server.Endpoint);
        await writer.PutAsync(Prefix + "Name", "one");
        await writer.PutAsync(Prefix + "Gone", "soon");
        await using var relay = TcpRelay.Start(_server.ClientPort);
        await using var reader = ArbiterClient.Connect(relay.Endpoint);
        using var configuration = Build(reader, optional: false);
        Assert.Equal("one", configuration["Name"]);
        Assert.Equal("soon", configuration["Gone"]);

        // While the source cannot see the server: change, delete, and compact the history it would resume from.
        relay.Cut();
        await writer.PutAsync(Prefix + "Name", "two");
        await writer.DeleteAsync(Prefix + "Gone");
        var last = await writer.PutAsync(Prefix + "Name", "three");
        await writer.CompactAsync(last.Header.Revision);
        relay.Restore();

        await WaitForAsync(configuration, "Name", "three");
        Assert.Null(configuration["Gone"]);
        await writer.PutAsync(Prefix + "Name", "four");
        await WaitForAsync(configuration, "Name", "four");
    }

    [Fact]
    public async Task Optional_source_starts_empty_while_the_server_is_down_and_fills_when_it_comes_up()
    {
        await using var reader = ArbiterClient.Connect(_server.Endpoint);
        using var configuration = Build(reader, optional: true);
        Assert.Null(configuration["Name"]);
        Assert.Contains(_logs.AtLeast(LogLevel.Warning), m => m.Contains("optional", StringComparison.Ordinal) && m.Contains(Prefix, StringComparison.Ordinal));

        // The ports were chosen at construction; a "restart" keeps them, so the source's endpoint answers.
        await _server.StartAsync(isRestart: true);
        await using var writer = ArbiterClient.Connect(_server.Endpoint);
        await writer.PutAsync(Prefix + "Name", "one");
        await writer.PutAsync(Prefix + "Feature/Enabled", "true");
        await WaitForAsync(configuration, "Name", "one");
        await WaitForAsync(configuration, "Feature:Enabled", "true");
    }

    [Fact]
    public async Task Required_source_with_the_server_down_fails_to_build_with_a_clear_error()
    {
        await using var reader = ArbiterClient.Connect(_server.Endpoint);
        var error = Assert.Throws<InvalidOperationException>(() => Build(reader, optional: false));
        Assert.Contains($"'{Prefix}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("Optional", error.Message, StringComparison.Ordinal);
    }

    private ConfigurationRoot Build(ArbiterClient client, bool optional) =>
        (ConfigurationRoot)new ConfigurationBuilder().AddArbiter(client, Prefix, source =>
        {
            source.Optional = optional;
            source.LoggerFactory = _logs.Factory;
            source.RetryDelayMs = 200;
        }).Build();

    private static Task WaitForAsync(ConfigurationRoot configuration, string key, string value) =>
        TestSupport.EventuallyAsync(() => Task.FromResult(configuration[key] == value), TestSupport.Deadline, $"configuration[{key}] == {value}");
}
