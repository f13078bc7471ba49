using System.Globalization;
using Arbiter.Client;
using Arbiter.Protocol.Etcd;
using Arbiter.Protocol.Transactions;
using Arbiter.Recipes.Transactions;
using Google.Protobuf;
using Npgsql;

namespace Arbiter.Bench.Transactions;

/// <summary>One client of one concurrency-control family: moves money between two accounts, retrying as its family does.</summary>
public interface IBankClient : IAsyncDisposable
{
    /// <summary>Moves <paramref name="amount"/> from account <paramref name="from"/> to <paramref name="to"/> (one committed transaction).</summary>
    Task TransferAsync(int from, int to, long amount, CancellationToken cancellationToken);

    /// <summary>Attempts that failed and were retried so far.</summary>
    long Retries { get; }

    /// <summary>Deadlock victims so far.</summary>
    long Deadlocks { get; }
}

/// <summary>The families measured, and how each one's clients are made.</summary>
public static class BankFamilies
{
    /// <summary>Strict 2PL on Arbiter: Begin taking X locks on both accounts in key order, reads, writes, commit.</summary>
    public const string Pessimistic = "pessimistic";

    /// <summary>
    /// Strict 2PL with both X locks in one Lock call after a plain Begin (three log commands): for an
    /// A/B against <see cref="Pessimistic"/> at the same load. Not in <see cref="All"/>; ask for it with --families.
    /// </summary>
    public const string PessimisticLockCall = "pessimistic-lockcall";

    /// <summary>
    /// A family's name with this suffix runs it with the SDK's transaction session turned off (every
    /// call unary): for an A/B against the session at the same load. Not in <see cref="All"/>; ask
    /// for it with --families, e.g. <c>pessimistic-unary</c>.
    /// </summary>
    public const string UnarySuffix = "-unary";

    /// <summary>Arbiter optimistic transaction: reads at one revision, server-validated commit.</summary>
    public const string Optimistic = "optimistic";

    /// <summary>AtomicallyAsync (etcd clientv3's STM algorithm, SerializableSnapshot) on Arbiter.</summary>
    public const string Stm = "stm";

    /// <summary>The same STM code against a real etcd.</summary>
    public const string EtcdStm = "etcd-stm";

    /// <summary>PostgreSQL: SELECT … ORDER BY id FOR UPDATE, UPDATE, COMMIT (synchronous_commit on).</summary>
    public const string Postgres = "postgres";

    /// <summary>Every family, in run order.</summary>
    public static readonly IReadOnlyList<string> All = [Pessimistic, Optimistic, Stm, EtcdStm, Postgres];

    /// <summary>Retries as long as etcd's STM does (it never gives up), with the SDK's full-jitter backoff.</summary>
    public static readonly RetryPolicy Policy = RetryPolicy.Default with { MaxAttempts = 100_000, BudgetCapacity = 1e12, BudgetRefillPerSuccess = 1 };

    /// <summary>The key of account <paramref name="index"/> in a set of <paramref name="accounts"/>.</summary>
    public static string Key(int accounts, int index) => string.Create(CultureInfo.InvariantCulture, $"bank{accounts}/acct/{index:D5}");

    /// <summary>The PostgreSQL table of a set of <paramref name="accounts"/>.</summary>
    public static string Table(int accounts) => string.Create(CultureInfo.InvariantCulture, $"accounts_{accounts}");

    /// <summary>A client of <paramref name="family"/>.</summary>
    public static IBankClient Create(string family, int accounts, string arbiterEndpoint, string etcdEndpoint, NpgsqlDataSource? postgres) => family switch
    {
        Pessimistic or PessimisticLockCall or Optimistic or Stm => new SdkBankClient(ArbiterClient.Connect(arbiterEndpoint), family, accounts),
        _ when family.EndsWith(UnarySuffix, StringComparison.Ordinal) && family[..^UnarySuffix.Length] is Pessimistic or PessimisticLockCall or Optimistic or Stm
            => new SdkBankClient(ConnectUnary(arbiterEndpoint), family[..^UnarySuffix.Length], accounts),
        EtcdStm => new SdkBankClient(ArbiterClient.Connect(etcdEndpoint), Stm, accounts),
        Postgres => new PostgresBankClient(postgres ?? throw new ArgumentException("--postgres is required for the postgres family"), accounts),
        _ => throw new ArgumentException($"unknown family '{family}'"),
    };

    private static ArbiterClient ConnectUnary(string endpoint)
    {
        var options = new ArbiterClientOptions { TransactionSessions = false };
        options.Endpoints.Add(endpoint);
        return ArbiterClient.Connect(options);
    }

    /// <summary>Puts every account at <paramref name="initial"/> (128 puts per Txn, etcd's limit).</summary>
    public static async Task SeedKvAsync(string endpoint, int accounts, long initial, CancellationToken cancellationToken)
    {
        await using var client = ArbiterClient.Connect(endpoint);
        for (var start = 0; start < accounts; start += 128)
        {
            var txn = new TxnRequest();
            for (var i = start; i < Math.Min(accounts, start + 128); i++)
            {
                txn.Success.Add(new RequestOp { RequestPut = new PutRequest { Key = ByteString.CopyFromUtf8(Key(accounts, i)), Value = ByteString.CopyFromUtf8(initial.ToString(CultureInfo.InvariantCulture)) } });
            }

            await client.TxnAsync(txn, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>Creates (or recreates) the accounts table with every balance at <paramref name="initial"/>.</summary>
    public static async Task SeedPostgresAsync(NpgsqlDataSource postgres, int accounts, long initial, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(postgres);
        await using var command = postgres.CreateCommand(
            $"DROP TABLE IF EXISTS {Table(accounts)}; CREATE TABLE {Table(accounts)} (id int PRIMARY KEY, balance bigint NOT NULL); " +
            $"INSERT INTO {Table(accounts)} SELECT g, {initial.ToString(CultureInfo.InvariantCulture)} FROM generate_series(0, {(accounts - 1).ToString(CultureInfo.InvariantCulture)}) g;");
        await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The sum of every balance (a transfer never changes it).</summary>
    public static async Task<long> TotalKvAsync(string endpoint, int accounts, CancellationToken cancellationToken)
    {
        await using var client = ArbiterClient.Connect(endpoint);
        var start = ByteString.CopyFromUtf8(Key(accounts, 0));
        var response = await client.RangeAsync(new RangeRequest { Key = start, RangeEnd = Arbiter.Protocol.KeyRanges.PrefixEnd(ByteString.CopyFromUtf8($"bank{accounts}/acct/")) }, cancellationToken).ConfigureAwait(false);
        return response.Kvs.Sum(kv => long.Parse(kv.Value.ToStringUtf8(), CultureInfo.InvariantCulture));
    }

    /// <summary>The sum of every balance in PostgreSQL.</summary>
    public static async Task<long> TotalPostgresAsync(NpgsqlDataSource postgres, int accounts, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(postgres);
        await using var command = postgres.CreateCommand($"SELECT sum(balance)::bigint FROM {Table(accounts)}");
        return (long)(await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false))!;
    }

    private static long Parse(string? value) => string.IsNullOrEmpty(value) ? 0 : long.Parse(value, CultureInfo.InvariantCulture);

    private static string Text(long value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>Arbiter's SDK (pessimistic, optimistic, STM) on Arbiter, or its STM on etcd.</summary>
    private sealed class SdkBankClient(ArbiterClient client, string family, int accounts) : IBankClient
    {
        private readonly TransactionClient _txns = new(client, new TransactionClientOptions { RetryPolicy = Policy, SessionTtl = TimeSpan.FromSeconds(30) });
        private readonly TransactionOptions _pessimistic = new() { Mode = TransactionMode.Pessimistic, ImplicitLocks = false };
        private readonly TransactionOptions _optimistic = new() { Mode = TransactionMode.Optimistic };

        public long Retries => _txns.Metrics.Retries;

        public long Deadlocks => _txns.Metrics.Deadlocks;

        public Task TransferAsync(int from, int to, long amount, CancellationToken cancellationToken)
        {
            var (fromKey, toKey) = (Key(accounts, from), Key(accounts, to));
            return family switch
            {
                Pessimistic => _txns.RunTransactionAsync(
                    async (t, ct) =>
                    {
                        var a = Parse(await t.GetAsync(fromKey, ct).ConfigureAwait(false));
                        var b = Parse(await t.GetAsync(toKey, ct).ConfigureAwait(false));
                        t.Put(fromKey, Text(a - amount));
                        t.Put(toKey, Text(b + amount));
                    },
                    Policy,
                    // Both X locks taken by Begin itself, in key order (as the PostgreSQL client orders its
                    // FOR UPDATE: no deadlock by design): a transfer is two log commands, Begin and Commit.
                    _pessimistic with { Locks = string.CompareOrdinal(fromKey, toKey) < 0 ? [LockTarget.Exclusive(fromKey), LockTarget.Exclusive(toKey)] : [LockTarget.Exclusive(toKey), LockTarget.Exclusive(fromKey)] },
                    cancellationToken),
                PessimisticLockCall => _txns.RunTransactionAsync(
                    async (t, ct) =>
                    {
                        await t.LockExclusiveAsync(string.CompareOrdinal(fromKey, toKey) < 0 ? [fromKey, toKey] : [toKey, fromKey], cancellationToken: ct).ConfigureAwait(false);
                        var a = Parse(await t.GetAsync(fromKey, ct).ConfigureAwait(false));
                        var b = Parse(await t.GetAsync(toKey, ct).ConfigureAwait(false));
                        t.Put(fromKey, Text(a - amount));
                        t.Put(toKey, Text(b + amount));
                    },
                    Policy,
                    _pessimistic,
                    cancellationToken),
                Optimistic => _txns.RunTransactionAsync(
                    async (t, ct) =>
                    {
                        var a = Parse(await t.GetAsync(fromKey, ct).ConfigureAwait(false));
                        var b = Parse(await t.GetAsync(toKey, ct).ConfigureAwait(false));
                        t.Put(fromKey, Text(a - amount));
                        t.Put(toKey, Text(b + amount));
                    },
                    Policy,
                    _optimistic,
                    cancellationToken),
                _ => _txns.AtomicallyAsync(
                    async (stm, ct) =>
                    {
                        var a = Parse(await stm.GetAsync(fromKey, ct).ConfigureAwait(false));
                        var b = Parse(await stm.GetAsync(toKey, ct).ConfigureAwait(false));
                        stm.Put(fromKey, Text(a - amount));
                        stm.Put(toKey, Text(b + amount));
                    },
                    StmIsolation.SerializableSnapshot,
                    Policy,
                    cancellationToken),
            };
        }

        public async ValueTask DisposeAsync()
        {
            await _txns.DisposeAsync().ConfigureAwait(false);
            await client.DisposeAsync().ConfigureAwait(false);
        }
    }

    /// <summary>PostgreSQL over one connection: rows locked in id order, retried on deadlock or serialization failure.</summary>
    private sealed class PostgresBankClient(NpgsqlDataSource postgres, int accounts) : IBankClient
    {
        private NpgsqlConnection? _connection;
        private long _retries;
        private long _deadlocks;

        public long Retries => Interlocked.Read(ref _retries);

        public long Deadlocks => Interlocked.Read(ref _deadlocks);

        public async Task TransferAsync(int from, int to, long amount, CancellationToken cancellationToken)
        {
            _connection ??= await postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
            while (true)
            {
                try
                {
                    await using var txn = await _connection.BeginTransactionAsync(cancellationToken).ConfigureAwait(false);
                    long a = 0, b = 0;
                    await using (var select = new NpgsqlCommand($"SELECT id, balance FROM {Table(accounts)} WHERE id = $1 OR id = $2 ORDER BY id FOR UPDATE", _connection, txn))
                    {
                        select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = from });
                        select.Parameters.Add(new NpgsqlParameter<int> { TypedValue = to });
                        await using var reader = await select.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
                        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                        {
                            if (reader.GetInt32(0) == from)
                            {
                                a = reader.GetInt64(1);
                            }
                            else
                            {
                                b = reader.GetInt64(1);
                            }
                        }
                    }

                    await using (var batch = new NpgsqlBatch(_connection, txn))
                    {
                        batch.BatchCommands.Add(Update(from, a - amount));
                        batch.BatchCommands.Add(Update(to, b + amount));
                        await batch.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
                    }

                    await txn.CommitAsync(cancellationToken).ConfigureAwait(false);
                    return;
                }
                catch (PostgresException e) when (e.SqlState is PostgresErrorCodes.DeadlockDetected or PostgresErrorCodes.SerializationFailure)
                {
                    if (e.SqlState == PostgresErrorCodes.DeadlockDetected)
                    {
                        Interlocked.Increment(ref _deadlocks);
                    }

                    Interlocked.Increment(ref _retries);
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync().ConfigureAwait(false);
            }
        }

        private NpgsqlBatchCommand Update(int id, long balance)
        {
            var command = new NpgsqlBatchCommand($"UPDATE {Table(accounts)} SET balance = $1 WHERE id = $2");
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = balance });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = id });
            return command;
        }
    }
}
