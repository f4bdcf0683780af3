using Behemoth.Exporter.Pruning;
using ScottPlot;

namespace Behemoth.Cli;

/// <summary>The share of each domain's tokens routed to each expert: layers × experts, one panel per domain, one color scale.</summary>
internal static class ExpertHeatmap
{
    public static void Write(ExpertStats stats, string path)
    {
        var plot = new Plot();
        int e = stats.Model.Experts, layers = stats.Model.MoeLayers.Count;
        var names = stats.Domains.Keys.Order().ToArray();
        double max = stats.Domains.Values.SelectMany(d => d.Layers).SelectMany(l => l.Frequency).Max();
        var ticks = new List<Tick>();
        for (int p = 0; p < names.Length; p++)
        {
            var domain = stats.Domains[names[p]];
            var cells = new double[layers, e];
            for (int i = 0; i < layers; i++)           // rows are drawn top-down: the first MoE layer at the bottom
            {
                var l = domain.Layers.Single(x => x.Layer == stats.Model.MoeLayers[i]);
                for (int j = 0; j < e; j++) cells[layers - 1 - i, j] = l.Frequency[j] / stats.Model.TopK;
            }
            var heatmap = plot.Add.Heatmap(cells);
            heatmap.Colormap = new ScottPlot.Colormaps.Viridis();
            heatmap.ManualRange = new ScottPlot.Range(0, max / stats.Model.TopK);
            double left = p * (e + 2);
            heatmap.Extent = new CoordinateRect(left + 0.5, left + e - 0.5, 0.5, layers - 0.5);
            var label = plot.Add.Text($"{names[p]} ({domain.Tokens:N0} tokens)", left + e / 2.0, layers + 0.2);
            label.LabelFontSize = 16;
            label.LabelAlignment = Alignment.LowerCenter;
            int step = e <= 16 ? 4 : e <= 64 ? 16 : 32;
            for (int j = 0; j < e; j += step) ticks.Add(new Tick(left + j + 0.5, j.ToString()));
            if (p == 0) plot.Add.ColorBar(heatmap).Label = "share of the layer's routed tokens";
        }
        plot.Axes.Bottom.TickGenerator = new ScottPlot.TickGenerators.NumericManual(ticks.ToArray());
        plot.Axes.Left.TickGenerator = new ScottPlot.TickGenerators.NumericManual(
            Enumerable.Range(0, layers).Select(i => new Tick(i + 0.5, stats.Model.MoeLayers[i].ToString())).ToArray());
        plot.Axes.SetLimits(-0.5, names.Length * (e + 2) - 1.5, -0.2, layers + 1.2);
        plot.Grid.IsVisible = false;
        plot.Axes.Left.Label.Text = "MoE layer";
        plot.Axes.Bottom.Label.Text = "expert";
        plot.Title($"{stats.Model.Architecture}: share of each domain's tokens routed to each expert");
        string tmp = path + ".tmp.png";
        plot.SavePng(tmp, Math.Max(900, 60 + names.Length * (e + 2) * 14), 140 + layers * 60);
        File.Move(tmp, path, overwrite: true);
    }
}
