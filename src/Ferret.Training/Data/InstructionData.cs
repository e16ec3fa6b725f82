using System.Text.Json;

namespace Ferret.Training.Data;

/// <summary>The published formats Ferret.NET reads.</summary>
public enum DataFormat
{
    /// <summary>Decide from the file: extension, then the first record's fields.</summary>
    Auto,

    /// <summary>Alpaca: <c>instruction</c>, <c>input</c>, <c>output</c> (JSON array or JSONL).</summary>
    Alpaca,

    /// <summary>
    /// Code Alpaca: Alpaca's fields; the category is the programming language (a <c>lang</c> field when
    /// present, else detected by <see cref="CodeLanguage"/>). Never chosen by <see cref="DataFormat.Auto"/>.
    /// </summary>
    CodeAlpaca,

    /// <summary>Dolly-15K: <c>instruction</c>, <c>context</c>, <c>response</c>, <c>category</c> (JSONL).</summary>
    Dolly,

    /// <summary>Natural Instructions v2 task files: <c>Definition</c>, <c>Instances</c>; a folder of them, or one.</summary>
    NaturalInstructions,

    /// <summary>GSM8K: <c>question</c>, <c>answer</c> (JSONL); the exact answer follows <c>####</c>.</summary>
    Gsm8k,
}

/// <summary>What to do with a malformed record.</summary>
public enum MalformedRecords
{
    /// <summary>Skip it and report it (file and line) in <see cref="InstructionDataSet.Problems"/>.</summary>
    Skip,

    /// <summary>Stop with an <see cref="InvalidDataException"/> naming the file and line.</summary>
    Fail,
}

/// <summary>Examples read from a file or folder, and every record that could not be read.</summary>
public sealed record InstructionDataSet(IReadOnlyList<InstructionExample> Examples, IReadOnlyList<string> Problems, DataFormat Format);

/// <summary>Reads instruction data sets in their published formats.</summary>
public static class InstructionData
{
    public static InstructionDataSet Read(string path, DataFormat format = DataFormat.Auto, MalformedRecords malformed = MalformedRecords.Skip)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        if (Directory.Exists(path))
        {
            if (format is not (DataFormat.Auto or DataFormat.NaturalInstructions))
                throw new ArgumentException($"'{path}' is a folder; only Natural Instructions data comes as a folder of task files.");
            return ReadNaturalInstructionsFolder(path, malformed);
        }
        if (!File.Exists(path))
            throw new FileNotFoundException($"Data file '{path}' does not exist.", path);
        if (format == DataFormat.Auto)
            format = Detect(path);
        var problems = new List<string>();
        var examples = format switch
        {
            DataFormat.NaturalInstructions => ReadNaturalInstructionsTask(path, malformed, problems),
            _ when path.EndsWith(".json", StringComparison.OrdinalIgnoreCase) => ReadJsonArray(path, format, malformed, problems),
            _ => ReadJsonLines(path, format, malformed, problems),
        };
        return new InstructionDataSet(examples, problems, format);
    }

    /// <summary>Chooses the format from the extension and the first record's fields.</summary>
    public static DataFormat Detect(string path)
    {
        JsonElement first;
        using (var reader = new StreamReader(path))
        {
            if (path.EndsWith(".json", StringComparison.OrdinalIgnoreCase))
            {
                using var doc = ParseOrThrow(reader.ReadToEnd(), path, 1);
                if (doc.RootElement.ValueKind == JsonValueKind.Object && doc.RootElement.TryGetProperty("Instances", out _))
                    return DataFormat.NaturalInstructions;
                if (doc.RootElement.ValueKind != JsonValueKind.Array || doc.RootElement.GetArrayLength() == 0)
                    throw new InvalidDataException($"'{path}' is neither a non-empty JSON array of records nor a Natural Instructions task.");
                first = doc.RootElement[0].Clone();
            }
            else
            {
                string? line;
                int n = 0;
                do
                {
                    line = reader.ReadLine();
                    n++;
                }
                while (line is not null && string.IsNullOrWhiteSpace(line));
                if (line is null)
                    throw new InvalidDataException($"'{path}' holds no records.");
                using var doc = ParseOrThrow(line, path, n);
                first = doc.RootElement.Clone();
            }
        }
        bool Has(string field) => first.ValueKind == JsonValueKind.Object && first.TryGetProperty(field, out _);
        if (Has("question") && Has("answer"))
            return DataFormat.Gsm8k;
        if (Has("response"))
            return DataFormat.Dolly;
        if (Has("instruction") && Has("output"))
            return DataFormat.Alpaca;
        throw new InvalidDataException($"'{path}': cannot tell the format from the first record's fields; pass the format explicitly.");
    }

    private static JsonDocument ParseOrThrow(string text, string path, int line)
    {
        try
        {
            return JsonDocument.Parse(text);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{Where(path, line, e)}: not valid JSON ({What(e)}).", e);
        }
    }

    /// <summary>
    /// <c>path:line:column</c> of a JSON error in text that starts at <paramref name="firstLine"/> of the file
    /// (System.Text.Json counts lines and bytes from 0 within the text it was given).
    /// </summary>
    internal static string Where(string path, int firstLine, JsonException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        long line = firstLine + (e.LineNumber ?? 0);
        return e.BytePositionInLine is long column ? $"{path}:{line}:{column + 1}" : $"{path}:{line}";
    }

    /// <summary>The parser's complaint without its own position suffix (which counts from 0).</summary>
    internal static string What(JsonException e)
    {
        ArgumentNullException.ThrowIfNull(e);
        var m = e.Message;
        int cut = m.IndexOf(" Path:", StringComparison.Ordinal) is >= 0 and var p ? p : m.IndexOf(" LineNumber:", StringComparison.Ordinal);
        return (cut >= 0 ? m[..cut] : m).Trim().TrimEnd('.');
    }

    private static List<InstructionExample> ReadJsonLines(string path, DataFormat format, MalformedRecords malformed, List<string> problems)
    {
        var examples = new List<InstructionExample>();
        int number = 0;
        foreach (var line in File.ReadLines(path))
        {
            number++;
            if (string.IsNullOrWhiteSpace(line))
                continue;
            try
            {
                using var doc = JsonDocument.Parse(line);
                examples.Add(FromRecord(doc.RootElement, format) with { Source = $"{path}:{number}" });
            }
            catch (JsonException e)
            {
                Report(problems, malformed, $"{Where(path, number, e)}: not valid JSON ({What(e)})", e);
            }
            catch (InvalidDataException e)
            {
                Report(problems, malformed, $"{path}:{number}: {e.Message}", e);
            }
        }
        return examples;
    }

    private static List<InstructionExample> ReadJsonArray(string path, DataFormat format, MalformedRecords malformed, List<string> problems)
    {
        using var doc = ParseOrThrow(File.ReadAllText(path), path, 1);
        if (doc.RootElement.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"'{path}' is not a JSON array of records.");
        var examples = new List<InstructionExample>();
        int index = 0;
        foreach (var record in doc.RootElement.EnumerateArray())
        {
            try
            {
                examples.Add(FromRecord(record, format) with { Source = $"{path}[{index}]" });
            }
            catch (InvalidDataException e)
            {
                Report(problems, malformed, $"{path}[{index}]: {e.Message}", e);
            }
            index++;
        }
        return examples;
    }

    private static void Report(List<string> problems, MalformedRecords malformed, string message, Exception e)
    {
        if (malformed == MalformedRecords.Fail)
            throw new InvalidDataException(message, e);
        problems.Add(message);
    }

    private static string Field(JsonElement record, string name, bool required)
    {
        if (record.ValueKind != JsonValueKind.Object)
            throw new InvalidDataException($"a record must be a JSON object, not {record.ValueKind}");
        if (!record.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return required ? throw new InvalidDataException($"field '{name}' is missing") : "";
        return v.ValueKind == JsonValueKind.String ? v.GetString()! : throw new InvalidDataException($"field '{name}' is a {v.ValueKind}, not a string");
    }

    private static InstructionExample FromRecord(JsonElement r, DataFormat format) => format switch
    {
        DataFormat.Alpaca => new InstructionExample(Field(r, "instruction", true), Field(r, "input", false), Field(r, "output", true),
            FirstOf(Field(r, "category", false), Field(r, "lang", false), "alpaca")),
        DataFormat.CodeAlpaca => CodeAlpaca(Field(r, "instruction", true), Field(r, "input", false), Field(r, "output", true), Field(r, "lang", false)),
        DataFormat.Dolly => new InstructionExample(Field(r, "instruction", true), Field(r, "context", false), Field(r, "response", true),
            FirstOf(Field(r, "category", false), "dolly")),
        DataFormat.Gsm8k => new InstructionExample(Field(r, "question", true), "", Field(r, "answer", true), "gsm8k"),
        _ => throw new ArgumentException($"Format {format} has no JSON-record reader."),
    };

    private static InstructionExample CodeAlpaca(string instruction, string input, string output, string language) =>
        new(instruction, input, output, string.IsNullOrEmpty(language) ? CodeLanguage.Detect(instruction, output) : language.ToLowerInvariant());

    private static string FirstOf(params string[] values) => values.First(v => !string.IsNullOrEmpty(v));

    private static InstructionDataSet ReadNaturalInstructionsFolder(string folder, MalformedRecords malformed)
    {
        var files = Directory.GetFiles(folder, "*.json").Order(StringComparer.Ordinal).ToList();
        if (files.Count == 0)
            throw new InvalidDataException($"'{folder}' holds no Natural Instructions task files (*.json).");
        var problems = new List<string>();
        var examples = files.SelectMany(f => ReadNaturalInstructionsTask(f, malformed, problems)).ToList();
        return new InstructionDataSet(examples, problems, DataFormat.NaturalInstructions);
    }

    private static List<InstructionExample> ReadNaturalInstructionsTask(string path, MalformedRecords malformed, List<string> problems)
    {
        using var doc = ParseOrThrow(File.ReadAllText(path), path, 1);
        var root = doc.RootElement;
        string task = Path.GetFileNameWithoutExtension(path);
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("Definition", out var def) || !root.TryGetProperty("Instances", out var instances)
            || instances.ValueKind != JsonValueKind.Array)
            throw new InvalidDataException($"'{path}' is not a Natural Instructions task: it needs 'Definition' and an 'Instances' array.");
        string definition = def.ValueKind == JsonValueKind.Array
            ? string.Join("\n", def.EnumerateArray().Select(d => d.GetString()))
            : def.GetString() ?? "";
        var examples = new List<InstructionExample>();
        int index = 0;
        foreach (var instance in instances.EnumerateArray())
        {
            try
            {
                var input = Field(instance, "input", true);
                if (!instance.TryGetProperty("output", out var outputs))
                    throw new InvalidDataException("field 'output' is missing");
                var output = outputs.ValueKind switch
                {
                    JsonValueKind.Array when outputs.GetArrayLength() > 0 && outputs[0].ValueKind == JsonValueKind.String => outputs[0].GetString()!,
                    JsonValueKind.String => outputs.GetString()!,
                    _ => throw new InvalidDataException("field 'output' must be a non-empty array of strings"),
                };
                examples.Add(new InstructionExample(definition, input, output, task) { Source = $"{path}: Instances[{index}]" });
            }
            catch (InvalidDataException e)
            {
                Report(problems, malformed, $"{path}: Instances[{index}]: {e.Message}", e);
            }
            index++;
        }
        return examples;
    }
}
