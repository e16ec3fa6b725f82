using Ferret.Training.Data;

namespace Ferret.Training.Tests.Data;

public sealed class CodeLanguageTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("ferret-code-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Theory]
    [InlineData("Write a Python function that adds two numbers.", "", "python")]
    [InlineData("Create a JavaScript function to reverse a string.", "", "javascript")]
    [InlineData("Write a Java program that prints hello.", "", "java")]
    [InlineData("Write a C++ program to sort an array.", "", "c++")]
    [InlineData("Implement a stack in C#.", "", "c#")]
    [InlineData("Write a C program to swap two numbers.", "", "c")]
    [InlineData("Write an SQL query to list all employees.", "", "sql")]
    [InlineData("Create an HTML page with a heading.", "", "html")]
    [InlineData("Write a function to add two numbers.", "def add(a, b):\n    return a + b", "python")]
    [InlineData("Print the numbers 1 to 10.", "for (int i = 1; i <= 10; i++) {\n  System.out.println(i);\n}", "java")]
    [InlineData("Log a greeting.", "const greet = (name) => console.log(`hi ${name}`);", "javascript")]
    [InlineData("Count the rows of a table.", "SELECT COUNT(*) FROM orders;", "sql")]
    [InlineData("Say hello.", "#include <iostream>\nint main() { std::cout << \"hi\"; }", "c++")]
    [InlineData("Say hello.", "#include <stdio.h>\nint main() { printf(\"hi\"); }", "c")]
    [InlineData("Make a table.", "<table><tr><td>1</td></tr></table>", "html")]
    [InlineData("What is a closure?", "A closure captures variables from its enclosing scope.", "other")]
    public void The_language_comes_from_the_instruction_then_the_answer(string instruction, string output, string expected) =>
        Assert.Equal(expected, CodeLanguage.Detect(instruction, output));

    [Fact]
    public void Words_that_merely_contain_a_language_name_do_not_count()
    {
        // "Javanese", "scatter", "category", "forgo" must not read as Java, C, R or Go.
        Assert.Equal("other", CodeLanguage.Detect("Translate a Javanese proverb, scatter the words, give a category, forgo nothing.", "Done."));
    }

    [Fact]
    public void Code_alpaca_files_are_partitioned_one_language_per_client()
    {
        var path = Path.Combine(_dir, "code_alpaca.json");
        File.WriteAllText(path, """
            [{"instruction": "Write a Python function to square x.", "input": "", "output": "def sq(x):\n    return x * x"},
             {"instruction": "Square a number.", "input": "5", "output": "def sq(x):\n    return x * x"},
             {"instruction": "Write a Java method to square x.", "input": "", "output": "int sq(int x) { return x * x; }"},
             {"instruction": "Select every user.", "input": "", "output": "SELECT * FROM users;"},
             {"instruction": "Anything", "input": "", "output": "x", "lang": "Rust"}]
            """);
        var set = InstructionData.Read(path, DataFormat.CodeAlpaca);
        Assert.Equal(["python", "python", "java", "sql", "rust"], set.Examples.Select(e => e.Category));
        Assert.Equal(DataFormat.Alpaca, InstructionData.Read(path).Format); // auto-detection never guesses Code Alpaca
        var parts = Partitioner.Partition(set.Examples, 4, PartitionScheme.ByCategory, seed: 1);
        Assert.All(parts, p => Assert.Single(p.Select(i => set.Examples[i].Category).Distinct()));
        Assert.Equal(5, parts.Sum(p => p.Count));
    }
}
