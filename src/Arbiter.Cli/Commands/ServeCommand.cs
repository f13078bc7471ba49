using System.CommandLine;
using Arbiter.Core;
using Arbiter.Node;
using Arbiter.Node.Cluster;
using Arbiter.Node.Compaction;
using Arbiter.Node.Security;
using Arbiter.Protocol.Security;
using Arbiter.Server;
using Arbiter.Server.Auth;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Arbiter.Cli.Commands;

/// <summary><c>arbiter serve</c>: run a member, with etcd's flag names where they mean the same.</summary>
internal static class ServeCommand
{
    /// <summary>
    /// A member removed from the cluster exits normally, as etcd 3.4 does (etcdmain exits 0 once the
    /// server stopped): a supervisor that restarts on failure leaves it down.
    /// </summary>
    internal const int RemovedExitCode = 0;

    private const string RemovedExitMessage = "Exiting: this member has been removed from the cluster; the data-dir used by this member must be removed before it joins again";

    public static Command Create()
    {
        var name = new Option<string>("--name") { Description = "Member name.", DefaultValueFactory = _ => "default" };
        var dataDir = new Option<string?>("--data-dir") { Description = "Data directory (default: ./data/<name>)." };
        var inMemory = new Option<bool>("--in-memory") { Description = "Keep everything in memory; nothing survives a restart." };
        var listenClient = new Option<string>("--listen-client-urls") { Description = "Comma-separated URLs to serve clients on.", DefaultValueFactory = _ => "http://127.0.0.1:2379" };
        var listenMetrics = new Option<string?>("--listen-metrics-urls") { Description = "Comma-separated plain-HTTP URLs serving only /metrics and /health (as etcd's)." };
        var otlpEndpoint = new Option<string?>("--otlp-endpoint") { Description = "Push traces and metrics to this OpenTelemetry collector (OTLP); default: OTEL_EXPORTER_OTLP_ENDPOINT if set, else nothing is pushed." };
        var otlpProtocol = new Option<string>("--otlp-protocol") { Description = "grpc or http/protobuf (with --otlp-endpoint).", DefaultValueFactory = _ => "grpc" };
        otlpProtocol.AcceptOnlyFromAmong("grpc", "http/protobuf");
        var advertiseClient = new Option<string?>("--advertise-client-urls") { Description = "Client URLs to advertise (default: the listen URLs)." };
        var advertisePeer = new Option<string>("--initial-advertise-peer-urls") { Description = "Peer URLs to advertise.", DefaultValueFactory = _ => "http://127.0.0.1:2380" };
        var clusterToken = new Option<string>("--initial-cluster-token") { Description = "Cluster token (mixed into member and cluster ids).", DefaultValueFactory = _ => "arbiter-cluster" };
        var logLevel = new Option<LogLevel>("--log-level")
        {
            Description = "Logging level (etcd's names; also trace, critical).",
            HelpName = "debug|info|warn|error|panic|fatal",
            DefaultValueFactory = _ => LogLevel.Information,
            CustomParser = arg => ParseLogLevel(arg.Tokens.Single().Value, arg),
        };
        var maxRequestBytes = new Option<int>("--max-request-bytes") { Description = "Largest client request, in bytes.", DefaultValueFactory = _ => new CoreLimits().RequestSizeBytesMax };
        var maxTxnOps = new Option<int>("--max-txn-ops") { Description = "Most operations in one txn.", DefaultValueFactory = _ => new CoreLimits().TxnOpsMax };
        var quotaBytes = new Option<long>("--quota-backend-bytes") { Description = "Space quota; writes past it raise NOSPACE.", DefaultValueFactory = _ => new CoreLimits().QuotaBytes };
        var unsafeNoFsync = new Option<bool>("--unsafe-no-fsync") { Description = "Do not fsync (unsafe: acknowledged writes can be lost on a crash)." };
        var lockGrantsAwaitFsync = new Option<bool>("--lock-grants-await-fsync")
        {
            Description = "Single node: fsync transaction Begin and Lock commands before answering them. By default a grant is answered once written and fsynced within 1 ms or with the next command, before that command is answered " +
                "(a killed process loses nothing; a power loss can abort the last grants' transactions, never a commit). Clusters always answer after a quorum.",
        };
        var keepHistoryInMemory = new Option<bool>("--keep-history-in-memory")
        {
            Description = "Keep every version (the keys' newest and their history) on the managed heap. By default a version is paged out to unlinked files under <data-dir>/member/spill when written, and read back when needed.",
        };
        var recentValuesCacheBytes = new Option<int>("--recent-values-cache-bytes")
        {
            Description = "With versions paged out: how many of the bytes paged out last stay in memory too, so recent versions are read back without a system call (0: none).",
            DefaultValueFactory = _ => new NodeOptions().RecentValuesCacheSizeBytes,
        };
        var listenPeer = new Option<string?>("--listen-peer-urls") { Description = "URL to listen on for Raft traffic from other members (default: the advertised peer URL)." };
        var initialCluster = new Option<string?>("--initial-cluster") { Description = "Founding members as name=peerURL,… (given: run as a Raft cluster member, even of one)." };
        var initialClusterState = new Option<string>("--initial-cluster-state")
        {
            Description = "new: found the cluster with --initial-cluster; existing: join a running cluster (after `member add`).",
            DefaultValueFactory = _ => "new",
        };
        initialClusterState.AcceptOnlyFromAmong("new", "existing");
        var raftLogPages = new Option<string>("--raft-log-pages")
        {
            Description = "Where a cluster member keeps its Raft log since the last snapshot: memory (written with synchronous writes; faster flushes) or mapped " +
                "(memory-mapped files flushed with msync; the OS may drop clean pages under memory pressure). The files are the same: a member may restart with the other.",
            DefaultValueFactory = _ => "memory",
        };
        raftLogPages.AcceptOnlyFromAmong("memory", "mapped");
        var heartbeatMs = new Option<int>("--heartbeat-interval") { Description = "Leader heartbeat interval, in ms.", DefaultValueFactory = _ => 100 };
        var electionMs = new Option<int>("--election-timeout") { Description = "Election timeout, in ms.", DefaultValueFactory = _ => 1000 };
        var peerRequestTimeoutMs = new Option<int>("--peer-request-timeout")
        {
            Description = "How long a Raft request to another member may take, in ms; 0 (the default) derives it: a quarter of the election timeout, at least 200 ms and two heartbeats. " +
                "An established leader's requests to its followers wait the election timeout less one heartbeat instead (or this, if longer). " +
                "Raise it on a machine so busy that elections time out; every election step waits up to this long for a silent member.",
            DefaultValueFactory = _ => 0,
        };
        var autoCompactionMode = new Option<string>("--auto-compaction-mode")
        {
            Description = "periodic: keep --auto-compaction-retention of history by time; revision: keep that many revisions.",
            DefaultValueFactory = _ => "periodic",
        };
        autoCompactionMode.AcceptOnlyFromAmong("periodic", "revision");
        var autoCompactionRetention = new Option<string>("--auto-compaction-retention")
        {
            Description = "History to keep: hours or a duration such as 30m (periodic), or revisions (revision). 0 (the default) turns automatic compaction off.",
            DefaultValueFactory = _ => "0",
        };
        var consistencyWaitMs = new Option<int>("--consistency-wait-budget") { Description = "How long a member waits to reach the revision a session, causal, at-revision or bounded-staleness read needs before refusing it, in ms.", DefaultValueFactory = _ => new NodeOptions().ConsistencyWaitBudgetMs };
        var certFile = new Option<string?>("--cert-file") { Description = "PEM certificate of the client port (TLS on https client URLs)." };
        var keyFile = new Option<string?>("--key-file") { Description = "PEM private key of --cert-file." };
        var trustedCaFile = new Option<string?>("--trusted-ca-file") { Description = "PEM CA bundle client certificates must be issued by." };
        var clientCertAuth = new Option<bool>("--client-cert-auth") { Description = "Require a client certificate issued by --trusted-ca-file (mutual TLS)." };
        var peerCertFile = new Option<string?>("--peer-cert-file") { Description = "PEM certificate for member-to-member TLS (needs https peer URLs)." };
        var peerKeyFile = new Option<string?>("--peer-key-file") { Description = "PEM private key of --peer-cert-file." };
        var peerTrustedCaFile = new Option<string?>("--peer-trusted-ca-file") { Description = "PEM CA bundle other members' certificates must be issued by." };
        var peerClientCertAuth = new Option<bool>("--peer-client-cert-auth") { Description = "Require members dialling in to present a certificate issued by --peer-trusted-ca-file." };
        var authToken = new Option<string>("--auth-token") { Description = "Token kind: simple, or jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256|ES256|…[,ttl=5m] (etcd's syntax).", DefaultValueFactory = _ => "simple" };
        var authTokenTtl = new Option<int>("--auth-token-ttl") { Description = "Seconds a simple token lives unused (each use renews it).", DefaultValueFactory = _ => new AuthOptions().SimpleTokenTtlSeconds };
        var bcryptCost = new Option<int>("--bcrypt-cost") { Description = "bcrypt cost for password hashes (4-31).", DefaultValueFactory = _ => AuthOptions.BcryptCostDefault };
        var edgeDefaults = new EdgeLimits();
        var maxConcurrentStreams = new Option<long>("--max-concurrent-streams") { Description = "Most streams (calls) open at once on one client connection; more are refused with REFUSED_STREAM.", DefaultValueFactory = _ => edgeDefaults.ConcurrentStreamsPerConnectionMax };
        var maxRequestHeaderBytes = new Option<int>("--max-request-header-bytes") { Description = $"Largest request header list (and header field), in bytes ({EdgeLimits.RequestHeaderBytesMin}-{EdgeLimits.RequestHeaderBytesCap}).", DefaultValueFactory = _ => edgeDefaults.RequestHeaderBytesMax };
        var maxWatchesPerStream = new Option<int>("--max-watches-per-stream") { Description = "Most watches on one Watch stream; a create past it is canceled with a reason.", DefaultValueFactory = _ => new NodeOptions().WatchesPerStreamMax };
        var requestHeaderTimeout = new Option<string>("--request-header-timeout") { Description = "Longest a client may take to send the HTTP/2 preface, a header block or any frame it began, or HTTP/1.1 headers (slowloris), e.g. 10s.", DefaultValueFactory = _ => $"{edgeDefaults.RequestHeaderTimeoutMs}ms" };
        var idleConnectionTimeout = new Option<string>("--idle-connection-timeout") { Description = "How long a connection with nothing open may stay idle, e.g. 130s.", DefaultValueFactory = _ => $"{edgeDefaults.IdleConnectionTimeoutMs}ms" };
        var keepAliveInterval = new Option<string>("--grpc-keepalive-interval") { Description = "Ping a client connection after this long without traffic (0 to disable).", DefaultValueFactory = _ => "2h" };
        var keepAliveTimeout = new Option<string>("--grpc-keepalive-timeout") { Description = "Close a connection that does not answer a keep-alive ping within this (0 to disable).", DefaultValueFactory = _ => "20s" };
        var snapshotCount = new Option<int>("--snapshot-count") { Description = "Log entries between snapshots (older log is then dropped).", DefaultValueFactory = _ => new NodeOptions().SnapshotEveryEntries };
        var snapshotLogBytes = new Option<long>("--snapshot-log-bytes") { Description = "A cluster member also snapshots once its Raft log since the last snapshot holds this many bytes (or the last snapshot's size, if larger): less memory, fewer writes per second; 0: entries only (--snapshot-count).", DefaultValueFactory = _ => new NodeOptions().SnapshotEveryLogBytes };

        var command = new Command("serve", "Run an Arbiter member (a single node, or a Raft cluster member with --initial-cluster) serving the etcd v3 API.")
        {
            name, dataDir, inMemory, listenClient, listenMetrics, otlpEndpoint, otlpProtocol, advertiseClient, advertisePeer, clusterToken, logLevel,
            maxRequestBytes, maxTxnOps, quotaBytes, unsafeNoFsync, lockGrantsAwaitFsync, keepHistoryInMemory, recentValuesCacheBytes,
            listenPeer, initialCluster, initialClusterState, heartbeatMs, electionMs, peerRequestTimeoutMs, raftLogPages, snapshotCount, snapshotLogBytes, consistencyWaitMs,
            autoCompactionMode, autoCompactionRetention, authToken, authTokenTtl, bcryptCost,
            certFile, keyFile, trustedCaFile, clientCertAuth, peerCertFile, peerKeyFile, peerTrustedCaFile, peerClientCertAuth,
            maxConcurrentStreams, maxRequestHeaderBytes, maxWatchesPerStream, requestHeaderTimeout, idleConnectionTimeout, keepAliveInterval, keepAliveTimeout,
        };

        command.SetAction(async (result, cancellationToken) =>
        {
            var memberName = result.GetValue(name)!;
            var listenUrls = Split(result.GetValue(listenClient)!);
            var limits = new CoreLimits
            {
                RequestSizeBytesMax = result.GetValue(maxRequestBytes),
                TxnOpsMax = result.GetValue(maxTxnOps),
                QuotaBytes = result.GetValue(quotaBytes),
            };
            var options = new NodeOptions
            {
                Name = memberName,
                DataDirectory = result.GetValue(inMemory) ? null : Path.GetFullPath(result.GetValue(dataDir) ?? Path.Combine("data", memberName)),
                AdvertiseClientUrls = result.GetValue(advertiseClient) is { } advertised ? Split(advertised) : listenUrls,
                AdvertisePeerUrls = Split(result.GetValue(advertisePeer)!),
                ClusterToken = result.GetValue(clusterToken)!,
                Limits = limits,
                FsyncEnabled = !result.GetValue(unsafeNoFsync),
                LockGrantsAwaitFsync = result.GetValue(lockGrantsAwaitFsync),
                KeepHistoryInMemory = result.GetValue(keepHistoryInMemory),
                RecentValuesCacheSizeBytes = result.GetValue(recentValuesCacheBytes),
                SnapshotEveryEntries = Math.Max(1, result.GetValue(snapshotCount)),
                SnapshotEveryLogBytes = result.GetValue(snapshotLogBytes),
                ConsistencyWaitBudgetMs = Math.Max(0, result.GetValue(consistencyWaitMs)),
            };
            if (options.SnapshotEveryLogBytes < 0)
            {
                Console.Error.WriteLine($"error: --snapshot-log-bytes {options.SnapshotEveryLogBytes} must be 0 or more");
                return 2;
            }

            if (options.RecentValuesCacheSizeBytes < 0)
            {
                Console.Error.WriteLine($"error: --recent-values-cache-bytes {options.RecentValuesCacheSizeBytes} must be 0 or more");
                return 2;
            }

            if (!AutoCompactionOptions.TryParse(result.GetValue(autoCompactionMode)!, result.GetValue(autoCompactionRetention)!, out var autoCompaction, out var autoCompactionError))
            {
                Console.Error.WriteLine($"error: {autoCompactionError}");
                return 2;
            }

            options = options with { AutoCompaction = autoCompaction };
            if (!TryParseEdgeLimits(
                    result.GetValue(maxConcurrentStreams), result.GetValue(maxRequestHeaderBytes), result.GetValue(requestHeaderTimeout)!,
                    result.GetValue(idleConnectionTimeout)!, result.GetValue(keepAliveInterval)!, result.GetValue(keepAliveTimeout)!, out var edgeLimits, out var edgeError))
            {
                Console.Error.WriteLine($"error: {edgeError}");
                return 2;
            }

            if (TimingError(result.GetValue(heartbeatMs), result.GetValue(electionMs), result.GetValue(peerRequestTimeoutMs)) is { } timingError)
            {
                Console.Error.WriteLine($"error: {timingError}");
                return 2;
            }

            if (result.GetValue(maxWatchesPerStream) is var watchesMax && watchesMax < 1)
            {
                Console.Error.WriteLine($"error: --max-watches-per-stream {watchesMax} must be at least 1");
                return 2;
            }

            options = options with { WatchesPerStreamMax = watchesMax };
            var joinExisting = result.GetValue(initialClusterState) == "existing";
            if (result.GetValue(initialCluster) is { } members || joinExisting)
            {
                if (options.DataDirectory is null)
                {
                    Console.Error.WriteLine("error: a cluster member needs a data directory (--in-memory is for a single node)");
                    return 2;
                }

                var founding = ParseInitialCluster(result.GetValue(initialCluster) ?? $"{memberName}={options.AdvertisePeerUrls[0]}");
                if (founding is null || (!joinExisting && (!founding.TryGetValue(memberName, out var own) || !SamePeer(own, options.AdvertisePeerUrls[0]))))
                {
                    Console.Error.WriteLine($"error: --initial-cluster must list this member as {memberName}={options.AdvertisePeerUrls[0]} (name=peerURL,…)");
                    return 2;
                }

                options = options with
                {
                    Cluster = new ClusterOptions
                    {
                        ListenPeerUrl = result.GetValue(listenPeer) is { } listen ? Split(listen)[0] : options.AdvertisePeerUrls[0],
                        InitialCluster = founding,
                        JoinExisting = joinExisting,
                        HeartbeatIntervalMs = result.GetValue(heartbeatMs),
                        ElectionTimeoutMs = result.GetValue(electionMs),
                        PeerRequestTimeoutMs = result.GetValue(peerRequestTimeoutMs),
                        RaftLogPages = result.GetValue(raftLogPages) == "mapped" ? RaftLogPages.Mapped : RaftLogPages.InMemory,
                    },
                };
            }

            if (!TryParseAuth(result.GetValue(authToken)!, result.GetValue(authTokenTtl), result.GetValue(bcryptCost), out var authOptions, out var authError))
            {
                Console.Error.WriteLine($"error: {authError}");
                return 2;
            }

            var tlsFlags = new TlsFlags(
                result.GetValue(certFile), result.GetValue(keyFile), result.GetValue(trustedCaFile), result.GetValue(clientCertAuth),
                result.GetValue(peerCertFile), result.GetValue(peerKeyFile), result.GetValue(peerTrustedCaFile), result.GetValue(peerClientCertAuth));
            var peerUrls = options.Cluster is { } clusterOptions
                ? [clusterOptions.ListenPeerUrl, .. options.AdvertisePeerUrls, .. clusterOptions.InitialCluster.Values]
                : Array.Empty<string>();
            if (!TryLoadTls(tlsFlags, listenUrls, options.AdvertiseClientUrls, peerUrls, out var clientTls, out var peerTls, out var tlsError))
            {
                Console.Error.WriteLine($"error: {tlsError}");
                return 2;
            }

            options = options with { ClientTls = clientTls, PeerTls = peerTls };
            OtlpExportOptions? otlp = null;
            if (result.GetValue(otlpEndpoint) is { } collector)
            {
                if (!Uri.TryCreate(collector, UriKind.Absolute, out var collectorUri) || collectorUri.Scheme is not ("http" or "https"))
                {
                    Console.Error.WriteLine($"error: --otlp-endpoint {collector} is not an http or https URL");
                    return 2;
                }

                otlp = new OtlpExportOptions(collectorUri, result.GetValue(otlpProtocol) == "http/protobuf");
            }
            else if (!string.IsNullOrEmpty(Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT")))
            {
                // OpenTelemetry's exporter reads its own variables (endpoint, protocol, headers).
                otlp = new OtlpExportOptions(null, HttpProtobuf: false);
            }

            var serverOptions = new ServerOptions
            {
                Otlp = otlp,
                ListenClientUrls = listenUrls,
                ListenMetricsUrls = result.GetValue(listenMetrics) is { } metricsUrls ? Split(metricsUrls) : [],
                // etcd's rule: with verified client certificates, the certificate's common name is the user.
                Auth = authOptions with { ClientCertificateNamesUser = clientTls is { ClientCertAuth: true } },
                Edge = edgeLimits,
            };
            // Before anything is created on disk: every listen URL parses and can be bound now.
            if (!ServePreflight.TryParse(serverOptions.ListenClientUrls, serverOptions.ListenMetricsUrls, options.Cluster?.ListenPeerUrl, out var listens, out var listenError))
            {
                Console.Error.WriteLine(listenError);
                return 2;
            }

            if (ServePreflight.FirstUnbindable(listens) is { } bindError)
            {
                Console.Error.WriteLine(bindError);
                return ServePreflight.CannotListenExitCode;
            }

            return await RunAsync(options, serverOptions, result.GetValue(logLevel), cancellationToken).ConfigureAwait(false);
        });
        return command;
    }

    /// <summary>Parses and checks the connection limits (durations in Go's syntax, as etcd's flags); on failure, one line naming the flag.</summary>
    internal static bool TryParseEdgeLimits(
        long concurrentStreams, int headerBytes, string headerTimeout, string idleTimeout, string keepAliveInterval, string keepAliveTimeout,
        out EdgeLimits limits, out string? error)
    {
        limits = new EdgeLimits();
        error = null;
        var durations = new (string Flag, string Text)[]
        {
            ("--request-header-timeout", headerTimeout), ("--idle-connection-timeout", idleTimeout),
            ("--grpc-keepalive-interval", keepAliveInterval), ("--grpc-keepalive-timeout", keepAliveTimeout),
        };
        var parsedMs = new long[durations.Length];
        for (var i = 0; i < durations.Length; i++)
        {
            if (!EdgeLimits.TryParseDurationMs(durations[i].Text, out parsedMs[i]))
            {
                error = $"{durations[i].Flag} '{durations[i].Text}' is not a duration such as 500ms, 20s, 5m or 2h";
                return false;
            }
        }

        if (concurrentStreams is < 1 or > uint.MaxValue)
        {
            error = $"--max-concurrent-streams {concurrentStreams} is outside 1-{uint.MaxValue}";
            return false;
        }

        if (parsedMs[0] > int.MaxValue || parsedMs[1] > int.MaxValue)
        {
            error = $"{(parsedMs[0] > int.MaxValue ? durations[0].Flag : durations[1].Flag)} is longer than {int.MaxValue} ms";
            return false;
        }

        limits = new EdgeLimits
        {
            // etcd's default is math.MaxUint32; Kestrel counts streams in an int.
            ConcurrentStreamsPerConnectionMax = (int)Math.Min(concurrentStreams, int.MaxValue),
            RequestHeaderBytesMax = headerBytes,
            RequestHeaderTimeoutMs = (int)parsedMs[0],
            IdleConnectionTimeoutMs = (int)parsedMs[1],
            KeepAlivePingIntervalMs = parsedMs[2],
            KeepAlivePingTimeoutMs = parsedMs[3],
        };
        error = limits.Validate();
        return error is null;
    }

    /// <summary>Validates --auth-token, --auth-token-ttl and --bcrypt-cost (etcd's ranges), reading JWT key files.</summary>
    internal static bool TryParseAuth(string authToken, int ttlSeconds, int bcryptCost, out AuthOptions options, out string? error)
    {
        options = new AuthOptions();
        error = null;
        if (bcryptCost is < 4 or > 31)
        {
            error = $"--bcrypt-cost {bcryptCost} is outside 4-31";
            return false;
        }

        if (ttlSeconds <= 0)
        {
            error = $"--auth-token-ttl {ttlSeconds} must be a positive number of seconds";
            return false;
        }

        try
        {
            options = AuthOptions.ParseAuthToken(authToken, new AuthOptions { SimpleTokenTtlSeconds = ttlSeconds, BcryptCost = bcryptCost });
            return true;
        }
        catch (ArgumentException e)
        {
            error = e.Message;
            return false;
        }
    }

    /// <summary>Longest election timeout etcd accepts, in ms.</summary>
    private const int ElectionTimeoutMsMax = 50_000;

    /// <summary>
    /// etcd's checks of its timing flags (its messages for the first two), and ours for the peer
    /// request timeout: one that is not below the election timeout lets a silent member hold every
    /// election step past the candidates' own timeouts. Null when the three are consistent.
    /// </summary>
    internal static string? TimingError(int heartbeatMs, int electionMs, int peerRequestTimeoutMs)
    {
        if (heartbeatMs < 1)
        {
            return $"--heartbeat-interval {heartbeatMs} must be at least 1 (ms)";
        }

        if (electionMs < 5L * heartbeatMs)
        {
            return $"--election-timeout[{electionMs}ms] should be at least as 5 times as --heartbeat-interval[{heartbeatMs}ms]";
        }

        if (electionMs > ElectionTimeoutMsMax)
        {
            return $"--election-timeout[{electionMs}ms] is too long, and should be set less than {ElectionTimeoutMsMax}ms";
        }

        return peerRequestTimeoutMs < 0 || peerRequestTimeoutMs >= electionMs
            ? $"--peer-request-timeout {peerRequestTimeoutMs} must be 0 (derived from the timing) or between 1 and the election timeout ({electionMs} ms), exclusive"
            : null;
    }

    private static async Task<int> RunAsync(NodeOptions options, ServerOptions serverOptions, LogLevel level, CancellationToken cancellationToken)
    {
        using var loggerFactory = LoggerFactory.Create(b => b.AddSimpleConsole(c =>
        {
            c.SingleLine = true;
            c.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            c.UseUtcTimestamp = true;
        }).SetMinimumLevel(level));
        var logger = loggerFactory.CreateLogger("arbiter");

        // The node starts (data directory, snapshot, log replay, Raft) while the web application is
        // built on this thread: each takes about as long as the other, mostly JIT and type loading,
        // and a restarted member used to do them one after the other (issue #12). Task.Run: the
        // start does real work before its first await. Kestrel starts listening only once the node
        // is ready, as etcd opens no client port before it is ready.
        var nodeStart = Task.Run(() => ArbiterNode.StartAsync(options, loggerFactory, cancellationToken), CancellationToken.None);
        WebApplication app;
        try
        {
            app = BuildApplication(nodeStart, options, serverOptions, level);
        }
        catch
        {
            // Not expected (the flags were checked): leave no node running behind the error.
            await DisposeWhenStartedAsync(nodeStart).ConfigureAwait(false);
            throw;
        }

        logger.LogDebug("Web application built; waiting for the node to start");
        ArbiterNode node;
        try
        {
            node = await nodeStart.ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            await app.DisposeAsync().ConfigureAwait(false);
            Console.Error.WriteLine($"error: cannot open data directory {options.DataDirectory}: {e.Message}");
            return 1;
        }
        catch
        {
            await app.DisposeAsync().ConfigureAwait(false);
            throw;
        }

        var removed = node.Removed;
        await using (node.ConfigureAwait(false))
        {
            // The application resolves the node (and disposes it) once it has been asked for it: no
            // earlier than the first request, which is after it started.
            await using (app.ConfigureAwait(false))
            {
                // Found removed while starting: nothing to serve.
                if (!removed.IsCancellationRequested)
                {
                    try
                    {
                        await app.StartAsync(cancellationToken).ConfigureAwait(false);
                    }
                    catch (IOException e) when (e.InnerException is System.Net.Sockets.SocketException socket)
                    {
                        // Taken between the pre-flight check and now: one line, as every start-up failure.
                        Console.Error.WriteLine($"error: cannot listen on {string.Join(",", serverOptions.ListenClientUrls)}: {ServePreflight.Describe(socket)}");
                        return ServePreflight.CannotListenExitCode;
                    }

                    logger.LogInformation(
                        "arbiter serving the etcd v3 API on {Urls} — member {Name} ({MemberId:x16}), data {DataDirectory}, revision {Revision}",
                        string.Join(",", serverOptions.ListenClientUrls), options.Name, node.MemberId, options.DataDirectory ?? "(in memory)", node.Revision);
                    using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, removed);
                    await app.WaitForShutdownAsync(stop.Token).ConfigureAwait(false);
                    logger.LogInformation("arbiter shutting down");
                }
            }
        }

        if (removed.IsCancellationRequested)
        {
            logger.LogWarning(RemovedExitMessage);
            return RemovedExitCode;
        }

        return 0;
    }

    private static async Task DisposeWhenStartedAsync(Task<ArbiterNode> nodeStart)
    {
        try
        {
            await (await nodeStart.ConfigureAwait(false)).DisposeAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or OperationCanceledException)
        {
            // The node did not start: nothing to stop.
        }
    }

    /// <summary>The web application over the node being started, with the console logging of <c>arbiter serve</c>.</summary>
    private static WebApplication BuildApplication(Task<ArbiterNode> node, NodeOptions options, ServerOptions serverOptions, LogLevel level) =>
        ArbiterServer.Build(node, options, serverOptions, logging =>
        {
            logging.AddSimpleConsole(c =>
            {
                c.SingleLine = true;
                c.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
                c.UseUtcTimestamp = true;
            });
            logging.SetMinimumLevel(level);
            logging.AddFilter("Microsoft.AspNetCore", level < LogLevel.Warning ? LogLevel.Warning : level);

            // Kestrel warns at start that a plain HTTP/1.1+HTTP/2 port serves HTTP/1.1 only;
            // not so here (CleartextProtocolSelection). Its errors still show.
            logging.AddFilter("Microsoft.AspNetCore.Server.Kestrel", level < LogLevel.Error ? LogLevel.Error : level);

            // While this category can log at all, ASP.NET Core starts an Activity per request
            // (a trace id for log scopes, and a copy of the execution context): 15% of a put's
            // allocations. It only logs request start and finish, at Information and Debug.
            logging.AddFilter("Microsoft.AspNetCore.Hosting.Diagnostics", level <= LogLevel.Debug ? level : LogLevel.None);

            // gRPC logs every call a client cancels or lets time out at Information, with the
            // whole stack trace: a normal client disconnect is not an event. Its warnings and
            // errors (a handler that failed) still show.
            logging.AddFilter("Grpc.AspNetCore.Server.ServerCallHandler", level < LogLevel.Warning ? LogLevel.Warning : level);
        });

    /// <summary>The TLS flags as given.</summary>
    private sealed record TlsFlags(
        string? CertFile, string? KeyFile, string? TrustedCaFile, bool ClientCertAuth,
        string? PeerCertFile, string? PeerKeyFile, string? PeerTrustedCaFile, bool PeerClientCertAuth);

    /// <summary>
    /// Checks the TLS flags against the URLs and loads the files; on failure, one line saying what
    /// is wrong (and nothing loaded). Rules: a certificate needs its key and the other way round; an
    /// https client URL needs the client-port certificate; peer TLS is on exactly when the peer URLs
    /// are https, needs the peer certificate and the peer CA (members are checked against it), and
    /// an https advertised client URL (members forward requests to each other's client port).
    /// </summary>
    private static bool TryLoadTls(
        TlsFlags flags, IReadOnlyList<string> listenClientUrls, IReadOnlyList<string> advertiseClientUrls, string[] peerUrls,
        out TlsCredentials? clientTls, out TlsCredentials? peerTls, out string error)
    {
        clientTls = null;
        peerTls = null;
        error = string.Empty;
        if ((flags.CertFile is null) != (flags.KeyFile is null))
        {
            error = "--cert-file and --key-file go together: give both or neither";
            return false;
        }

        if ((flags.PeerCertFile is null) != (flags.PeerKeyFile is null))
        {
            error = "--peer-cert-file and --peer-key-file go together: give both or neither";
            return false;
        }

        if (flags.CertFile is null && (flags.ClientCertAuth || flags.TrustedCaFile is not null))
        {
            error = "--client-cert-auth and --trusted-ca-file need --cert-file and --key-file (and an https client URL)";
            return false;
        }

        if (flags.PeerCertFile is null && (flags.PeerClientCertAuth || flags.PeerTrustedCaFile is not null))
        {
            error = "--peer-client-cert-auth and --peer-trusted-ca-file need --peer-cert-file and --peer-key-file (and https peer URLs)";
            return false;
        }

        if (listenClientUrls.FirstOrDefault(IsHttps) is { } secureUrl && flags.CertFile is null)
        {
            error = $"--listen-client-urls {secureUrl}: an https URL needs --cert-file and --key-file";
            return false;
        }

        if (flags.CertFile is not null && !listenClientUrls.Any(IsHttps))
        {
            error = "--cert-file is given but no --listen-client-urls URL is https://";
            return false;
        }

        var securePeers = peerUrls.Where(IsHttps).ToList();
        if (securePeers.Count > 0 && flags.PeerCertFile is null)
        {
            error = $"peer URL {securePeers[0]}: an https peer URL needs --peer-cert-file, --peer-key-file and --peer-trusted-ca-file";
            return false;
        }

        if (flags.PeerCertFile is not null)
        {
            if (peerUrls.Length == 0)
            {
                error = "--peer-cert-file is for cluster members (give --initial-cluster with https peer URLs)";
                return false;
            }

            if (securePeers.Count != peerUrls.Length)
            {
                error = $"--peer-cert-file is given but peer URL {peerUrls.First(u => !IsHttps(u))} is not https:// (every peer URL must be, in --initial-cluster too)";
                return false;
            }

            if (flags.PeerTrustedCaFile is null)
            {
                error = "--peer-cert-file needs --peer-trusted-ca-file: members are checked against that CA";
                return false;
            }

            if (!advertiseClientUrls.Any(IsHttps))
            {
                error = "peer TLS needs an https client URL (--advertise-client-urls): members forward requests to each other's client port";
                return false;
            }
        }

        try
        {
            if (flags.CertFile is not null)
            {
                clientTls = TlsCredentials.Load(flags.CertFile, flags.KeyFile!, flags.TrustedCaFile, flags.ClientCertAuth);
            }

            if (flags.PeerCertFile is not null)
            {
                peerTls = TlsCredentials.Load(flags.PeerCertFile, flags.PeerKeyFile!, flags.PeerTrustedCaFile, flags.PeerClientCertAuth, "peer-");
            }

            return true;
        }
        catch (TlsConfigurationException e)
        {
            clientTls?.Dispose();
            clientTls = null;
            error = e.Message;
            return false;
        }
    }

    private static bool IsHttps(string url) => url.StartsWith("https://", StringComparison.OrdinalIgnoreCase);

    /// <summary>Accepts etcd's level names (debug, info, warn, error, panic, fatal) and .NET's.</summary>
    private static LogLevel ParseLogLevel(string text, System.CommandLine.Parsing.ArgumentResult result)
    {
        switch (text.ToUpperInvariant())
        {
            case "TRACE": return LogLevel.Trace;
            case "DEBUG": return LogLevel.Debug;
            case "INFO" or "INFORMATION": return LogLevel.Information;
            case "WARN" or "WARNING": return LogLevel.Warning;
            case "ERROR": return LogLevel.Error;
            case "PANIC" or "FATAL" or "CRITICAL": return LogLevel.Critical;
            default:
                result.AddError($"Unknown log level '{text}': use debug, info, warn or error.");
                return LogLevel.Information;
        }
    }

    /// <summary>Parses etcd's <c>name=peerURL,name=peerURL</c>; null when malformed.</summary>
    internal static Dictionary<string, string>? ParseInitialCluster(string text)
    {
        var members = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var entry in Split(text))
        {
            var parts = entry.Split('=', 2, StringSplitOptions.TrimEntries);
            if (parts.Length != 2 || parts[0].Length == 0 || !Uri.TryCreate(parts[1], UriKind.Absolute, out _) || !members.TryAdd(parts[0], parts[1]))
            {
                return null;
            }
        }

        return members.Count > 0 ? members : null;
    }

    private static bool SamePeer(string a, string b)
    {
        try
        {
            return PeerAddress.Parse(a).Equals(PeerAddress.Parse(b));
        }
        catch (ArgumentException)
        {
            return false;
        }
    }

    private static string[] Split(string urls) =>
        urls.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
}
