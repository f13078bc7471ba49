using Arbiter.Client;
using Arbiter.Node;

namespace Arbiter.Embedded;

/// <summary>
/// <c>ArbiterClient.ForNode(node)</c>: the typed client over an in-process node. A static
/// extension, so the name users know stays on <see cref="ArbiterClient"/> while the client
/// package itself carries no engine.
/// </summary>
public static class EmbeddedClientExtensions
{
    extension(ArbiterClient)
    {
        /// <summary>A client for an in-process node (the node is not disposed with the client).</summary>
        public static ArbiterClient ForNode(ArbiterNode node, ArbiterClientOptions? options = null) =>
            new(new EmbeddedArbiterClient(node), options);
    }
}
