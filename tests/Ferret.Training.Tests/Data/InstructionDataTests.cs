using Ferret.Training.Data;

namespace Ferret.Training.Tests.Data;

public sealed class InstructionDataTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "ferret-data-" + Guid.NewGuid().ToString("N"));

    public InstructionDataTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string name, string text)
    {
        var path = Path.Combine(_dir, name);
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, text);
        return path;
    }

    [Fact]
    public void A_malformed_line_is_reported_with_its_own_line_and_column_not_the_parsers_zero_based_position()
    {
        var lines = string.Join('\n', Enumerable.Range(1, 4).Select(i => $$"""{"instruction": "n{{i}}", "output": "o"}""")) + "\n{\"instruction\": x}\n";
        var set = InstructionData.Read(Write("five.jsonl", lines));
        var problem = Assert.Single(set.Problems);
        Assert.True(problem.Contains("five.jsonl:5:17: not valid JSON", StringComparison.Ordinal), $"the fifth line, column 17 (the x): {problem}");
        Assert.True(!problem.Contains("LineNumber", StringComparison.Ordinal), $"no zero-based parser position: {problem}");
        // A JSON array file: the line inside the file, counted from 1.
        var error = Assert.Throws<InvalidDataException>(() => InstructionData.Read(Write("array.json", "[\n  {\"instruction\": \"a\", \"output\": \"b\"},\n  oops\n]")));
        Assert.True(error.Message.Contains("array.json:3:3", StringComparison.Ordinal), $"line 3, column 3: {error.Message}");
    }

    [Fact]
    public void Alpaca_json_arrays_and_code_alpaca_records_are_read()
    {
        var path = Write("alpaca.json", """
            [{"instruction": "Add", "input": "1 + 2", "output": "3"},
             {"instruction": "Write hello in C#", "input": "", "output": "Console.WriteLine(\"hello\");", "lang": "C#"}]
            """);
        var set = InstructionData.Read(path);
        Assert.Equal(DataFormat.Alpaca, set.Format);
        Assert.Equal("3", set.Examples[0].Output);
        Assert.Equal("alpaca", set.Examples[0].Category);
        Assert.Equal("C#", set.Examples[1].Category);
    }

    [Fact]
    public void Dolly_lines_keep_their_category_and_context()
    {
        var path = Write("dolly.jsonl", """
            {"instruction": "Who wrote it?", "context": "A book by X.", "response": "X", "category": "closed_qa"}

            {"instruction": "Say hi", "context": "", "response": "hi", "category": "open_qa"}
            """);
        var set = InstructionData.Read(path);
        Assert.Equal(DataFormat.Dolly, set.Format);
        Assert.Equal(["closed_qa", "open_qa"], set.Examples.Select(e => e.Category));
        Assert.Equal("A book by X.", set.Examples[0].Input);
    }

    [Fact]
    public void Gsm8k_questions_become_instructions()
    {
        var set = InstructionData.Read(Write("gsm8k.jsonl", """{"question": "2+2?", "answer": "2+2=4\n#### 4"}"""));
        Assert.Equal(DataFormat.Gsm8k, set.Format);
        Assert.Equal("2+2?", set.Examples[0].Instruction);
        Assert.Equal("gsm8k", set.Examples[0].Category);
    }

    [Fact]
    public void Natural_instructions_task_files_give_one_task_per_file()
    {
        Write("ni/task001_reverse.json", """{"Definition": ["Reverse the text."], "Positive Examples": [], "Instances": [{"id": "1", "input": "ab", "output": ["ba"]}, {"id": "2", "input": "cd", "output": ["dc", "d c"]}]}""");
        Write("ni/task002_upper.json", """{"Definition": ["Upper-case it."], "Instances": [{"id": "1", "input": "a", "output": ["A"]}, {"id": "2", "input": "b", "output": []}]}""");
        var set = InstructionData.Read(Path.Combine(_dir, "ni"));
        Assert.Equal(DataFormat.NaturalInstructions, set.Format);
        Assert.Equal(3, set.Examples.Count);
        Assert.Equal("task001_reverse", set.Examples[0].Category);
        Assert.Equal("dc", set.Examples[1].Output);
        var problem = Assert.Single(set.Problems);
        Assert.Contains("task002_upper.json: Instances[1]", problem);
    }

    [Fact]
    public void Malformed_lines_are_reported_with_file_and_line_or_stop_the_read()
    {
        var path = Write("mixed.jsonl", """
            {"instruction": "ok", "input": "", "output": "fine"}
            {"instruction": "broken", "input": "",
            {"instruction": "no output", "input": ""}
            {"instruction": 7, "input": "", "output": "x"}
            {"instruction": "ok too", "output": "fine"}
            """);
        var set = InstructionData.Read(path, DataFormat.Alpaca);
        Assert.Equal(2, set.Examples.Count);
        Assert.Equal(3, set.Problems.Count);
        Assert.Matches($"^{System.Text.RegularExpressions.Regex.Escape(path)}:2:[0-9]+: not valid JSON", set.Problems[0]);
        Assert.Contains($"{path}:3: field 'output' is missing", set.Problems[1]);
        Assert.Contains($"{path}:4: field 'instruction' is a Number", set.Problems[2]);
        var e = Assert.Throws<InvalidDataException>(() => InstructionData.Read(path, DataFormat.Alpaca, MalformedRecords.Fail));
        Assert.Contains($"{path}:2", e.Message);
    }

    [Fact]
    public void Unrecognisable_and_missing_files_are_refused_clearly()
    {
        Assert.Contains("cannot tell the format", Assert.Throws<InvalidDataException>(() => InstructionData.Read(Write("odd.jsonl", """{"prompt": "x"}"""))).Message);
        Assert.Throws<FileNotFoundException>(() => InstructionData.Read(Path.Combine(_dir, "missing.jsonl")));
    }
}
