namespace Arbiter.Server.Tests;

internal static class Placeholder
{
}
