using System.Text.RegularExpressions;

namespace Ferret.Training.Evaluation;

/// <summary>The paper's test scores: Rouge-L F1 over lower-cased whitespace tokens, and exact match.</summary>
public static partial class Metrics
{
    /// <summary>Rouge-L F1 (beta = 1): LCS of lower-cased whitespace tokens; 1 for two empty strings.</summary>
    public static double RougeL(string prediction, string reference)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(reference);
        var p = Tokens(prediction);
        var r = Tokens(reference);
        if (p.Length == 0 && r.Length == 0)
            return 1;
        if (p.Length == 0 || r.Length == 0)
            return 0;
        int lcs = LongestCommonSubsequence(p, r);
        if (lcs == 0)
            return 0;
        double precision = lcs / (double)p.Length;
        double recall = lcs / (double)r.Length;
        return 2 * precision * recall / (precision + recall);
    }

    internal static int LongestCommonSubsequence(string[] a, string[] b)
    {
        var previous = new int[b.Length + 1];
        var current = new int[b.Length + 1];
        for (int i = 1; i <= a.Length; i++)
        {
            for (int j = 1; j <= b.Length; j++)
                current[j] = a[i - 1] == b[j - 1] ? previous[j - 1] + 1 : Math.Max(previous[j], current[j - 1]);
            (previous, current) = (current, previous);
        }
        return previous[b.Length];
    }

    private static string[] Tokens(string text) => text.ToLowerInvariant().Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);

    /// <summary>Exact match after lower-casing and collapsing whitespace.</summary>
    public static bool ExactMatch(string prediction, string reference) =>
        string.Join(' ', Tokens(prediction ?? "")) == string.Join(' ', Tokens(reference ?? ""));

    /// <summary>GSM8K: the number after <c>####</c> in the reference against the prediction's final number.</summary>
    public static bool Gsm8kMatch(string prediction, string reference)
    {
        ArgumentNullException.ThrowIfNull(prediction);
        ArgumentNullException.ThrowIfNull(reference);
        var target = FinalAnswer(reference);
        var predicted = prediction.Contains("####", StringComparison.Ordinal) ? FinalAnswer(prediction) : Numbers().Matches(prediction).LastOrDefault()?.Value.Replace(",", "", StringComparison.Ordinal);
        return target is not null && target == predicted;
    }

    private static string? FinalAnswer(string text)
    {
        int at = text.LastIndexOf("####", StringComparison.Ordinal);
        return at < 0 ? null : Numbers().Match(text[(at + 4)..]) is { Success: true } m ? m.Value.Replace(",", "", StringComparison.Ordinal) : null;
    }

    [GeneratedRegex(@"-?\d[\d,]*(\.\d+)?")]
    private static partial Regex Numbers();
}
