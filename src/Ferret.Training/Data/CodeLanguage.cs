using System.Text.RegularExpressions;

namespace Ferret.Training.Data;

/// <summary>
/// The programming language of a Code Alpaca example, for partitioning by language (algorithms.md): Code
/// Alpaca's published records carry no language field, so it is read from the instruction when the
/// instruction names one ("Write a Python function ..."), else from the answer's syntax, else <c>other</c>.
/// </summary>
public static partial class CodeLanguage
{
    public const string Other = "other";

    // Longer names before their prefixes: javascript before java, c++ and c# before c.
    private static readonly (string Language, Regex Pattern)[] Named =
    [
        ("javascript", NamedRegex(@"javascript|node\.?js|js")),
        ("typescript", NamedRegex("typescript")),
        ("java", NamedRegex("java")),
        ("python", NamedRegex("python")),
        ("c++", NamedRegex(@"c\+\+|cpp")),
        ("c#", NamedRegex(@"c#|\.net")),
        ("sql", NamedRegex("sql|mysql|postgresql")),
        ("html", NamedRegex("html|css")),
        ("ruby", NamedRegex("ruby")),
        ("php", NamedRegex("php")),
        ("go", NamedRegex("golang|go")),
        ("rust", NamedRegex("rust")),
        ("swift", NamedRegex("swift")),
        ("kotlin", NamedRegex("kotlin")),
        ("r", NamedRegex("r")),
        ("shell", NamedRegex("bash|shell")),
        ("c", NamedRegex("c")),
    ];

    private static readonly (string Language, Regex Pattern)[] Syntax =
    [
        ("c#", SyntaxRegex(@"Console\.Write|using System|public static void Main")),
        ("java", SyntaxRegex(@"System\.out\.print|public class|public static void main\(String")),
        ("c++", SyntaxRegex(@"#include\s*<(iostream|vector|string)>|std::|cout\s*<<")),
        ("c", SyntaxRegex(@"#include\s*<|printf\(|int main\(")),
        ("php", SyntaxRegex(@"<\?php|\$[a-z_]+\s*=")),
        ("python", SyntaxRegex(@"^\s*def \w+\(|^\s*import \w+|print\(|^\s*for \w+ in |elif ")),
        ("javascript", SyntaxRegex(@"console\.log|function\s*\w*\(|=>|document\.|\b(let|const|var) \w+ =")),
        ("rust", SyntaxRegex(@"\bfn \w+\(|let mut ")),
        ("go", SyntaxRegex(@"package main|func \w+\(|fmt\.")),
        ("ruby", SyntaxRegex(@"^\s*puts |\bend$")),
        ("sql", new Regex(@"\b(SELECT .+ FROM|INSERT INTO|CREATE TABLE|UPDATE \w+ SET|DELETE FROM)\b", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant)),
        ("html", SyntaxRegex(@"<(html|div|p|body|head|table|form|span|a)\b|</\w+>")),
        ("shell", SyntaxRegex(@"^#!/bin/(ba)?sh|^\s*echo ")),
    ];

    /// <summary>The language an example is about.</summary>
    public static string Detect(string instruction, string output)
    {
        ArgumentNullException.ThrowIfNull(instruction);
        ArgumentNullException.ThrowIfNull(output);
        foreach (var (language, pattern) in Named)
        {
            if (pattern.IsMatch(instruction))
                return language;
        }
        foreach (var (language, pattern) in Syntax)
        {
            if (pattern.IsMatch(output))
                return language;
        }
        return Other;
    }

    /// <summary>A language named as a word in prose ("in Python", "a C program"), case-insensitive.</summary>
    private static Regex NamedRegex(string names) =>
        new($@"(?<![\w+#.])({names})(?![\w+#])", RegexOptions.IgnoreCase | RegexOptions.CultureInvariant);

    private static Regex SyntaxRegex(string pattern) => new(pattern, RegexOptions.Multiline | RegexOptions.CultureInvariant);
}
