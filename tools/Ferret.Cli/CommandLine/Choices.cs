using System.CommandLine;

namespace Ferret.Cli;

/// <summary>
/// Options whose value is one of a fixed list: matched case-insensitively, listed in lower case in help, and an
/// unknown value is a parse error naming the option and the choices (one line on stderr, exit code 2).
/// </summary>
internal static class Choices
{
    public static Option<string> Create(string name, string description, string defaultValue, params string[] choices)
    {
        var list = choices.Select(c => c.ToLowerInvariant()).ToArray();
        return new Option<string>(name)
        {
            Description = description,
            HelpName = string.Join('|', list),
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : defaultValue;
                var match = list.FirstOrDefault(c => string.Equals(c, text.Trim(), StringComparison.OrdinalIgnoreCase));
                if (match is null)
                    result.AddError($"{name}: '{text}' is not one of {string.Join(", ", list)}.");
                return match ?? defaultValue;
            },
        };
    }

    /// <summary>An enum as a choice: its names in lower case.</summary>
    public static Option<TEnum> Enum<TEnum>(string name, string description, TEnum defaultValue)
        where TEnum : struct, System.Enum
    {
        var names = System.Enum.GetNames<TEnum>().Select(n => n.ToLowerInvariant()).ToArray();
        return new Option<TEnum>(name)
        {
            Description = description,
            HelpName = string.Join('|', names),
            DefaultValueFactory = _ => defaultValue,
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[^1].Value : defaultValue.ToString();
                if (System.Enum.TryParse<TEnum>(text.Trim(), ignoreCase: true, out var value) && System.Enum.IsDefined(value) && !int.TryParse(text, out _))
                    return value;
                result.AddError($"{name}: '{text}' is not one of {string.Join(", ", names)}.");
                return defaultValue;
            },
        };
    }
}
