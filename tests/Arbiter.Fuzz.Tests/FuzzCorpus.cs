namespace Arbiter.Fuzz.Tests;

/// <summary>Where the committed corpus (tests/fuzz-corpus) and regression inputs (tests/fuzz-corpus/regressions) are.</summary>
internal static class FuzzCorpus
{
    /// <summary>tests/Arbiter.Fuzz.Tests/bin/{Configuration}/net10.0/ → tests/fuzz-corpus.</summary>
    public static string Root
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !Directory.Exists(Path.Combine(directory.FullName, "tests", "fuzz-corpus")))
            {
                directory = directory.Parent;
            }

            return directory is null
                ? throw new DirectoryNotFoundException($"tests/fuzz-corpus not found above {AppContext.BaseDirectory}")
                : Path.Combine(directory.FullName, "tests", "fuzz-corpus");
        }
    }

    public static List<byte[]> For(string target) => FuzzEngine.LoadCorpus(Path.Combine(Root, target));
}
