using System.Text.Json;

namespace Ferret.Training.Runtime;

/// <summary>Time spent in one kind of operator, summed over an ONNX Runtime profile.</summary>
/// <param name="OpType">Operator type, e.g. <c>MatMul</c>.</param>
/// <param name="Microseconds">Total kernel time.</param>
/// <param name="Calls">Kernel invocations.</param>
/// <param name="Share">Fraction of all kernel time.</param>
public sealed record OperatorTime(string OpType, long Microseconds, int Calls, double Share);

/// <summary>Reads ONNX Runtime's chrome-trace profile and answers "where does the time go".</summary>
public static class OrtProfile
{
    /// <summary>Appends the events of the <paramref name="others"/> profiles to <paramref name="main"/> (one trace for several sessions) and deletes them.</summary>
    public static string Merge(string main, IReadOnlyList<string> others)
    {
        ArgumentNullException.ThrowIfNull(others);
        if (others.Count == 0)
            return main;
        var events = new System.Text.Json.Nodes.JsonArray();
        foreach (var path in others.Prepend(main))
        {
            if (System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path)) is not System.Text.Json.Nodes.JsonArray array)
                throw new InvalidDataException($"Profile '{path}' is not a chrome-trace event array.");
            foreach (var e in array.ToList())
            {
                array.Remove(e);
                events.Add(e);
            }
        }
        File.WriteAllText(main, events.ToJsonString());
        foreach (var path in others)
            File.Delete(path);
        return main;
    }

    /// <summary>Kernel time per operator type, largest first.</summary>
    public static IReadOnlyList<OperatorTime> ByOperator(string profilePath)
    {
        using var stream = File.OpenRead(profilePath);
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(stream);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"Profile '{profilePath}' is not valid JSON: {e.Message}", e);
        }
        using (doc)
        {
            if (doc.RootElement.ValueKind != JsonValueKind.Array)
                throw new InvalidDataException($"Profile '{profilePath}' is not a chrome-trace event array.");
            var totals = new Dictionary<string, (long Us, int Calls)>(StringComparer.Ordinal);
            foreach (var e in doc.RootElement.EnumerateArray())
            {
                if (!e.TryGetProperty("cat", out var cat) || cat.GetString() != "Node")
                    continue;
                if (!e.TryGetProperty("name", out var name) || name.GetString() is not { } n || !n.EndsWith("_kernel_time", StringComparison.Ordinal))
                    continue;
                if (!e.TryGetProperty("args", out var args) || !args.TryGetProperty("op_name", out var op) || op.GetString() is not { } opType)
                    continue;
                long dur = e.TryGetProperty("dur", out var d) ? d.GetInt64() : 0;
                totals.TryGetValue(opType, out var t);
                totals[opType] = (t.Us + dur, t.Calls + 1);
            }
            double all = Math.Max(1, totals.Values.Sum(v => v.Us));
            return totals.Select(kv => new OperatorTime(kv.Key, kv.Value.Us, kv.Value.Calls, kv.Value.Us / all))
                .OrderByDescending(t => t.Microseconds).ThenBy(t => t.OpType, StringComparer.Ordinal).ToList();
        }
    }
}
