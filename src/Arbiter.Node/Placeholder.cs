namespace Arbiter.Node;

internal static class Placeholder
{
}
