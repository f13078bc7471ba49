namespace Arbiter.Packaging.Tests;

/// <summary>Paths in the repository this test assembly was built from.</summary>
public static class RepositoryLayout
{
    /// <summary>The folder holding Arbiter.slnx, found by walking up from the test assembly.</summary>
    public static string Root { get; } = FindRoot();

    /// <summary>The restore graph of a project under src/ (written by restore, read without building).</summary>
    public static string AssetsFile(string project) => Path.Combine(Root, "src", project, "obj", "project.assets.json");

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Arbiter.slnx")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException($"no Arbiter.slnx above {AppContext.BaseDirectory}");
    }
}
