namespace Arbiter.Storage.Tests;

internal static class Placeholder
{
}
