namespace Arbiter.Server;

internal static class Placeholder
{
}
