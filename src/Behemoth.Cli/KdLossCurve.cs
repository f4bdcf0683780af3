using System.Text.Json;
using Behemoth.Exporter.Pruning;
using ScottPlot;

namespace Behemoth.Cli;

/// <summary>
/// kd's loss curves next to the package: per pruned MoE layer, the relative error ‖y − y_teacher‖² / ‖y_teacher‖² at each
/// step on the training mini-batch and on the held-out calibration documents, with the step kept marked (PNG), and the
/// same numbers with the time and peak memory (JSON).
/// </summary>
internal static class KdLossCurve
{
    /// <summary>The picture's path for a profile of the package at <paramref name="package"/>: beside it, never inside (the manifest lists every file).</summary>
    public static string PathFor(string package, string profile) =>
        Path.GetFullPath(package).TrimEnd(Path.DirectorySeparatorChar) + $".kd-{profile}.png";

    public static (string Png, string Json) Write(string package, KdReport report)
    {
        string png = PathFor(package, report.Profile), json = Path.ChangeExtension(png, ".json");
        var plot = new Plot();
        var palette = new ScottPlot.Palettes.Category10();
        for (int i = 0; i < report.Layers.Count; i++)
        {
            var l = report.Layers[i];
            var steps = Enumerable.Range(0, l.HeldOut.Length).Select(s => (double)s).ToArray();
            var color = palette.GetColor(i);
            var train = plot.Add.ScatterLine(steps[1..], l.Train[1..]);
            train.Color = color.WithAlpha(0.35);
            train.LegendText = $"layer {l.Layer} train";
            var held = plot.Add.ScatterLine(steps, l.HeldOut);
            held.Color = color;
            held.LineWidth = 2;
            held.LegendText = $"layer {l.Layer} held-out (kept step {l.BestStep})";
            var best = plot.Add.Marker(l.BestStep, l.After);
            best.Color = color;
            best.Size = 10;
        }
        plot.Axes.Bottom.Label.Text = "step";
        plot.Axes.Left.Label.Text = "‖y − y_teacher‖² / ‖y_teacher‖²";
        plot.Title($"kd of profile '{report.Profile}': {report.TrainTokens} training and {report.HeldOutTokens} held-out calibration tokens, "
            + $"{report.Elapsed.TotalSeconds:F0} s");
        plot.ShowLegend(Alignment.UpperRight);
        string tmp = png + ".tmp.png";
        plot.SavePng(tmp, 1000, 600);
        File.Move(tmp, png, overwrite: true);
        File.WriteAllText(json, JsonSerializer.Serialize(new
        {
            profile = report.Profile,
            train_tokens = report.TrainTokens,
            held_out_tokens = report.HeldOutTokens,
            seconds = report.Elapsed.TotalSeconds,
            peak_working_set_bytes = report.PeakWorkingSetBytes,
            layers = report.Layers.Select(l => new
            {
                layer = l.Layer, kept_experts = l.KeptExperts, best_step = l.BestStep, before = l.Before, after = l.After,
                train = l.Train.Select(v => double.IsNaN(v) ? (double?)null : v), held_out = l.HeldOut,
            }),
        }, new JsonSerializerOptions { WriteIndented = true }));
        return (png, json);
    }
}
