namespace Arbiter.Protocol.Transactions;

/// <summary>Names shared by the server and the clients for the Transactions.Session stream.</summary>
public static class SessionMetadata
{
    /// <summary>
    /// The response header a server sends as soon as a session opens: the most calls it takes in
    /// flight on one session. Its presence is how a client knows the session is served (etcd
    /// answers Unimplemented and sends no such header).
    /// </summary>
    public const string CallsInFlightMaxHeader = "arbiter-session-calls-max";
}
