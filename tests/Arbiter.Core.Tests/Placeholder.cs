namespace Arbiter.Core.Tests;

internal static class Placeholder
{
}
