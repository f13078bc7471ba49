using ScottPlot;

namespace Arbiter.Bench.Reporting;

/// <summary>The PNG chart: candidate/baseline throughput and p99 ratios per cell, with the parity line.</summary>
public static class ChartWriter
{
    /// <summary>Writes the chart to <paramref name="path"/>.</summary>
    public static void Write(IReadOnlyList<ReportRow> rows, string baseline, string candidate, string path)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var plot = new Plot();
        var throughputColor = Colors.SteelBlue;
        var p99Color = Colors.DarkOrange;
        var bars = new List<Bar>();
        var ticks = new List<Tick>();
        for (var i = 0; i < rows.Count; i++)
        {
            var x = i * 3.0;
            if (rows[i].ThroughputRatio is { } t)
            {
                bars.Add(new Bar { Position = x, Value = t, FillColor = throughputColor, Size = 0.9 });
            }

            if (rows[i].P99Ratio is { } p)
            {
                bars.Add(new Bar { Position = x + 1, Value = p, FillColor = p99Color, Size = 0.9 });
            }

            ticks.Add(new Tick(x + 0.5, $"{rows[i].Workload} c={rows[i].Clients}"));
        }

        plot.Add.Bars(bars);
        var parity = plot.Add.HorizontalLine(1);
        parity.LineColor = Colors.Black;
        parity.LinePattern = LinePattern.Dashed;
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Bottom.TickLabelStyle.Rotation = 60;
        plot.Axes.Bottom.TickLabelStyle.Alignment = Alignment.MiddleLeft;
        plot.Axes.Bottom.MinimumSize = 160;
        plot.Axes.Left.Label.Text = $"{candidate} / {baseline}";
        plot.Title($"{candidate} relative to {baseline} (throughput: higher is better; p99: lower is better)");
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "throughput ratio", FillColor = throughputColor });
        plot.Legend.ManualItems.Add(new LegendItem { LabelText = "p99 latency ratio", FillColor = p99Color });
        plot.ShowLegend(Edge.Right);
        plot.Axes.Margins(bottom: 0);
        plot.SavePng(path, Math.Max(900, rows.Count * 60), 650);
    }
}
