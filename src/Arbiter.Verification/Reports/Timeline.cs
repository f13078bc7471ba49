using System.Globalization;
using System.Net;
using System.Text;
using Arbiter.Verification.Checkers;
using Arbiter.Verification.History;

namespace Arbiter.Verification.Reports;

/// <summary>
/// Draws a violation as a self-contained HTML page: one row per process, each operation a bar from
/// invocation to completion (green ok, red fail, grey open-ended info), the operations of the
/// unexplained window outlined, nemesis notes as vertical lines.
/// </summary>
public static class Timeline
{
    /// <summary>The page for <paramref name="violation"/> in <paramref name="history"/>.</summary>
    public static string Html(Violation violation, HistoryFile history)
    {
        var window = violation.Window.ToHashSet();
        var byId = history.Operations.ToDictionary(o => o.Id);
        List<Operation> shown;
        if (window.Count > 0)
        {
            var inWindow = window.Select(i => byId[i]).ToList();
            var from = inWindow.Min(o => o.InvokeNs);
            var to = inWindow.Max(o => o.CompleteNs == long.MaxValue ? o.InvokeNs : o.CompleteNs);
            shown = [.. history.Operations.Where(o => window.Contains(o.Id) || (o.InvokeNs <= to && (o.CompleteNs == long.MaxValue ? o.InvokeNs : o.CompleteNs) >= from && o.Key == violation.Key)).Take(300)];
        }
        else
        {
            shown = [.. history.Operations.Where(o => o.Key == violation.Key || violation.Key.Contains(o.Key, StringComparison.Ordinal)).TakeLast(300)];
        }

        if (shown.Count == 0)
        {
            shown = [.. history.Operations.TakeLast(100)];
        }

        var start = shown.Min(o => o.InvokeNs);
        var end = shown.Max(o => o.CompleteNs == long.MaxValue ? o.InvokeNs : o.CompleteNs);
        end = Math.Max(end, start + 1);
        var span = (end - start) * 1.1;
        var processes = shown.Select(o => o.Process).Distinct().Order().ToList();
        const int width = 1200, rowHeight = 26, left = 60;
        var height = (processes.Count * rowHeight) + 60;
        double X(long ns) => left + ((ns - start) / span * (width - left - 10));
        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='monospace' font-size='10'>");
        for (var row = 0; row < processes.Count; row++)
        {
            svg.Append(CultureInfo.InvariantCulture, $"<text x='4' y='{(row * rowHeight) + 30}'>p{processes[row]}</text>");
        }

        foreach (var note in history.Notes.Where(n => n.AtNs >= start && n.AtNs <= end))
        {
            var x = X(note.AtNs);
            svg.Append(CultureInfo.InvariantCulture, $"<line x1='{x:F1}' y1='10' x2='{x:F1}' y2='{height}' stroke='orange' stroke-dasharray='4'><title>{Escape(note.Text)}</title></line>");
        }

        foreach (var op in shown)
        {
            var row = processes.IndexOf(op.Process);
            var x1 = X(op.InvokeNs);
            var x2 = op.CompleteNs == long.MaxValue ? width - 10 : Math.Max(X(op.CompleteNs), x1 + 2);
            var fill = op.Status switch { OperationStatus.Ok => "#8fd18f", OperationStatus.Fail => "#f19a9a", _ => "#cccccc" };
            var stroke = window.Contains(op.Id) ? "stroke='black' stroke-width='2'" : string.Empty;
            var y = (row * rowHeight) + 18;
            svg.Append(CultureInfo.InvariantCulture, $"<rect x='{x1:F1}' y='{y}' width='{x2 - x1:F1}' height='18' fill='{fill}' {stroke}><title>{Escape(op.ToString())}</title></rect>");
            svg.Append(CultureInfo.InvariantCulture, $"<text x='{x1 + 2:F1}' y='{y + 13}'>{Escape(Short(op))}</text>");
        }

        svg.Append("</svg>");
        var page = new StringBuilder();
        page.Append("<!doctype html><html><head><meta charset='utf-8'><title>arbiter verify: ").Append(Escape(violation.Kind)).Append("</title></head><body>");
        page.Append("<h2>").Append(Escape(violation.Kind)).Append(" on ").Append(Escape(violation.Key)).Append("</h2><p>").Append(Escape(violation.Explanation)).Append("</p>");
        page.Append("<p>Rows are processes; bars run from invocation to completion (green ok, red fail, grey unknown outcome, open-ended). Outlined: the smallest window that cannot be explained. Dashed: nemesis events (hover for text).</p>");
        page.Append(svg).Append("<h3>Operations</h3><pre>");
        foreach (var op in shown)
        {
            page.Append(window.Contains(op.Id) ? "* " : "  ").AppendLine(Escape(op.ToString()));
        }

        page.Append("</pre></body></html>");
        return page.ToString();
    }

    private static string Short(Operation op) => op.Kind switch
    {
        OperationKind.Read => $"r {op.Value ?? "nil"}",
        OperationKind.Write => $"w {op.Value}",
        OperationKind.Cas => $"cas {op.Expected ?? "nil"}→{op.Value}",
        _ => $"{op.Kind} {op.Revision}",
    };

    private static string Escape(string text) => WebUtility.HtmlEncode(text);
}
