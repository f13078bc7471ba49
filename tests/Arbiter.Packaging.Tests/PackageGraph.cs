using System.Text.Json;

namespace Arbiter.Packaging.Tests;

/// <summary>
/// A project's restore graph from its <c>obj/project.assets.json</c>: every library in its
/// transitive closure (packages and projects) with the libraries each depends on directly.
/// </summary>
public sealed class PackageGraph
{
    private PackageGraph(string project, IReadOnlyList<string> direct, IReadOnlyDictionary<string, IReadOnlyList<string>> closure)
    {
        Project = project;
        Direct = direct;
        Closure = closure;
    }

    /// <summary>The project whose graph this is.</summary>
    public string Project { get; }

    /// <summary>The project's own package and project references.</summary>
    public IReadOnlyList<string> Direct { get; }

    /// <summary>Every library in the closure (name without version) and its direct dependencies.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Closure { get; }

    /// <summary>Reads <paramref name="assetsFile"/>.</summary>
    public static PackageGraph Read(string project, string assetsFile)
    {
        if (!File.Exists(assetsFile))
        {
            throw new FileNotFoundException($"{assetsFile} is missing: restore {project} first (dotnet build Arbiter.slnx does)", assetsFile);
        }

        using var json = JsonDocument.Parse(File.ReadAllText(assetsFile));
        var root = json.RootElement;
        var targets = root.GetProperty("targets").EnumerateObject().Single().Value;
        var closure = new SortedDictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var library in targets.EnumerateObject())
        {
            var name = library.Name.Split('/')[0];
            var dependencies = library.Value.TryGetProperty("dependencies", out var d)
                ? d.EnumerateObject().Select(p => p.Name).ToList()
                : [];
            closure[name] = dependencies;
        }

        var framework = root.GetProperty("project").GetProperty("frameworks").EnumerateObject().Single().Value;
        var direct = new List<string>();
        if (framework.TryGetProperty("dependencies", out var packages))
        {
            // Build-time-only references (Grpc.Tools, analyzers) are marked with suppressParent "All" and do not flow.
            direct.AddRange(packages.EnumerateObject()
                .Where(p => !(p.Value.TryGetProperty("suppressParent", out var s) && s.GetString() == "All"))
                .Select(p => p.Name));
        }

        var restore = root.GetProperty("project").GetProperty("restore").GetProperty("frameworks").EnumerateObject().Single().Value;
        if (restore.TryGetProperty("projectReferences", out var projects))
        {
            direct.AddRange(projects.EnumerateObject().Select(p => Path.GetFileNameWithoutExtension(p.Name)));
        }

        return new PackageGraph(project, direct, closure);
    }

    /// <summary>The libraries reachable from <paramref name="roots"/> without passing through <paramref name="stopAt"/>.</summary>
    public IReadOnlySet<string> ReachableFrom(IEnumerable<string> roots, Func<string, bool> stopAt)
    {
        var seen = new SortedSet<string>(StringComparer.Ordinal);
        var pending = new Stack<string>(roots);
        while (pending.TryPop(out var name))
        {
            if (stopAt(name) || !seen.Add(name) || !Closure.TryGetValue(name, out var dependencies))
            {
                continue;
            }

            foreach (var dependency in dependencies)
            {
                pending.Push(dependency);
            }
        }

        return seen;
    }
}
