namespace Arbiter.Client;

internal static class Placeholder
{
}
