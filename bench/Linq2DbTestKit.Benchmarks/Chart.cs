using System.Globalization;
using System.Text;

namespace Linq2DbTestKit.Benchmarks;

/// <summary>An SVG line chart of per-test cost against the number of tables, one line per strategy, logarithmic axes.</summary>
public static class Chart
{
    static readonly string[] Colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666"];

    public static string Svg(IReadOnlyList<Result> results, string title)
    {
        const double width = 940, height = 520, left = 80, right = 400, top = 50, bottom = 60;
        var tables = results.Select(r => r.Tables).Distinct().Order().ToArray();
        var costs = results.Select(r => r.MedianMicroseconds).ToArray();
        var (yMin, yMax) = (Math.Pow(10, Math.Floor(Math.Log10(costs.Min()))), Math.Pow(10, Math.Ceiling(Math.Log10(costs.Max()))));
        double X(int t) => left + (Math.Log(t) - Math.Log(tables[0])) / (Math.Log(tables[^1]) - Math.Log(tables[0])) * (width - left - right);
        double Y(double us) => height - bottom - (Math.Log10(us) - Math.Log10(yMin)) / (Math.Log10(yMax) - Math.Log10(yMin)) * (height - top - bottom);
        string F(double v) => v.ToString("0.#", CultureInfo.InvariantCulture);

        var svg = new StringBuilder();
        svg.Append(CultureInfo.InvariantCulture, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">""").AppendLine();
        svg.Append(CultureInfo.InvariantCulture, $"""<rect width="{width}" height="{height}" fill="white"/><text x="{left}" y="28" font-size="15" font-weight="bold">{Escape(title)}</text>""").AppendLine();
        for (var decade = yMin; decade <= yMax * 1.0001; decade *= 10)
        {
            svg.Append(CultureInfo.InvariantCulture, $"""<line x1="{left}" x2="{width - right}" y1="{F(Y(decade))}" y2="{F(Y(decade))}" stroke="#ddd"/>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{left - 8}" y="{F(Y(decade) + 4)}" text-anchor="end">{Label(decade)}</text>""").AppendLine();
        }

        foreach (var t in tables)
        {
            svg.Append(CultureInfo.InvariantCulture, $"""<line x1="{F(X(t))}" x2="{F(X(t))}" y1="{top}" y2="{height - bottom}" stroke="#eee"/>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{F(X(t))}" y="{height - bottom + 18}" text-anchor="middle">{t}</text>""").AppendLine();
        }

        svg.Append(CultureInfo.InvariantCulture, $"""<text x="{F((left + width - right) / 2)}" y="{height - 18}" text-anchor="middle">tables in the schema</text>""");
        svg.Append(CultureInfo.InvariantCulture, $"""<text transform="translate(18 {F((top + height - bottom) / 2)}) rotate(-90)" text-anchor="middle">per-test cost (median, log scale)</text>""").AppendLine();

        var strategies = results.Select(r => r.Strategy).Distinct().ToArray();
        for (var s = 0; s < strategies.Length; s++)
        {
            var color = Colors[s % Colors.Length];
            var points = results.Where(r => r.Strategy == strategies[s]).OrderBy(r => r.Tables).ToArray();
            svg.Append(CultureInfo.InvariantCulture, $"""<polyline fill="none" stroke="{color}" stroke-width="2" points="{string.Join(' ', points.Select(p => $"{F(X(p.Tables))},{F(Y(p.MedianMicroseconds))}"))}"/>""").AppendLine();
            foreach (var p in points)
                svg.Append(CultureInfo.InvariantCulture, $"""<circle cx="{F(X(p.Tables))}" cy="{F(Y(p.MedianMicroseconds))}" r="3.5" fill="{color}"/>""");
            var legendY = top + 10 + s * 22;
            svg.Append(CultureInfo.InvariantCulture, $"""<line x1="{width - right + 20}" x2="{width - right + 44}" y1="{legendY}" y2="{legendY}" stroke="{color}" stroke-width="3"/>""");
            svg.Append(CultureInfo.InvariantCulture, $"""<text x="{width - right + 50}" y="{legendY + 4}">{Escape(strategies[s])}</text>""").AppendLine();
        }

        return svg.Append("</svg>").AppendLine().ToString();
    }

    static string Label(double microseconds) => microseconds switch
    {
        >= 1_000_000 => $"{microseconds / 1_000_000:0.#} s",
        >= 1_000 => $"{microseconds / 1_000:0.#} ms",
        _ => $"{microseconds:0.#} µs",
    };

    static string Escape(string text) => text.Replace("&", "&amp;", StringComparison.Ordinal).Replace("<", "&lt;", StringComparison.Ordinal);
}
