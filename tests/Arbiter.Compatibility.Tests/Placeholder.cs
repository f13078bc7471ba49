namespace Arbiter.Compatibility.Tests;

internal static class Placeholder
{
}
