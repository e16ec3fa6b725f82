using Microsoft.CodeAnalysis;
using Microsoft.CodeAnalysis.CSharp;
using Microsoft.CodeAnalysis.CSharp.Syntax;

namespace Ferret.Core.Tests.Conventions;

/// <summary>
/// Conventions of the whole test suite, checked on its sources: an <c>Assert.True</c> or <c>Assert.False</c> says
/// what it expected (the others print expected and actual values themselves), so a failure on a loaded CI
/// machine explains itself.
/// </summary>
public class TestConventionTests
{
    private static string RepositoryRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Ferret.sln")))
            dir = dir.Parent;
        return dir?.FullName ?? throw new DirectoryNotFoundException($"No Ferret.sln above {AppContext.BaseDirectory}.");
    }

    [Fact]
    public void Every_boolean_assertion_in_the_tests_carries_a_message()
    {
        var tests = Path.Combine(RepositoryRoot(), "tests");
        var bare = new List<string>();
        int seen = 0;
        foreach (var file in Directory.EnumerateFiles(tests, "*.cs", SearchOption.AllDirectories))
        {
            if (file.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}", StringComparison.Ordinal)
                || file.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}", StringComparison.Ordinal))
                continue;
            var root = CSharpSyntaxTree.ParseText(File.ReadAllText(file)).GetRoot();
            foreach (var call in root.DescendantNodes().OfType<InvocationExpressionSyntax>())
            {
                if (call.Expression is not MemberAccessExpressionSyntax { Expression: IdentifierNameSyntax { Identifier.Text: "Assert" }, Name.Identifier.Text: "True" or "False" })
                    continue;
                seen++;
                if (call.ArgumentList.Arguments.Count < 2)
                    bare.Add($"{Path.GetRelativePath(tests, file)}:{call.GetLocation().GetLineSpan().StartLinePosition.Line + 1}: {call}");
            }
        }
        Assert.True(seen > 100, $"the scan found only {seen} boolean assertions under {tests}; is it reading the test sources?");
        Assert.True(bare.Count == 0, $"{bare.Count} Assert.True/False without a message (say what was expected):\n{string.Join('\n', bare)}");
    }
}
