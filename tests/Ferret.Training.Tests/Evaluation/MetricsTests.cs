using Ferret.Training.Data;
using Ferret.Training.Evaluation;

namespace Ferret.Training.Tests.Evaluation;

public class MetricsTests
{
    [Theory]
    [InlineData("the cat sat on the mat", "the cat sat on the mat", 1.0)]
    [InlineData("", "", 1.0)]
    [InlineData("anything", "", 0.0)]
    [InlineData("a b c", "x y z", 0.0)]
    // LCS("police killed the gunman", "police kill the gunman") = 3 of 4 and 4: F1 = 0.75.
    [InlineData("police killed the gunman", "police kill the gunman", 0.75)]
    // LCS = "a c" (2): precision 2/3, recall 2/4, F1 = 4/7.
    [InlineData("a b c", "A x C y", 4.0 / 7)]
    public void Rouge_l_is_the_lcs_f1_over_lowercased_tokens(string prediction, string reference, double expected) =>
        Assert.Equal(expected, Metrics.RougeL(prediction, reference), 9);

    [Fact]
    public void Exact_match_ignores_case_and_spacing_and_gsm8k_compares_final_numbers()
    {
        Assert.True(Metrics.ExactMatch("  Hello   World ", "hello world"), "expected Metrics.ExactMatch(\" Hello World \", \"hello world\")");
        Assert.False(Metrics.ExactMatch("hello", "hello world"), "expected false: Metrics.ExactMatch(\"hello\", \"hello world\")");
        Assert.True(Metrics.Gsm8kMatch("so the answer is 1,234", "work\n#### 1234"), "expected Metrics.Gsm8kMatch(\"so the answer is 1,234\", \"work\\n#### 1234\")");
        Assert.True(Metrics.Gsm8kMatch("#### 72", "48 + 24 = 72\n#### 72"), "expected Metrics.Gsm8kMatch(\"#### 72\", \"48 + 24 = 72\\n#### 72\")");
        Assert.False(Metrics.Gsm8kMatch("73", "#### 72"), "expected false: Metrics.Gsm8kMatch(\"73\", \"#### 72\")");
    }

    [Fact]
    public void Synthetic_tasks_have_correct_answers_and_are_reproducible()
    {
        var a = SyntheticTasks.Sample(SyntheticTasks.Names, 400, 9);
        Assert.Equal(a, SyntheticTasks.Sample(SyntheticTasks.Names, 400, 9));
        foreach (var e in a)
        {
            switch (e.Category)
            {
                case "reverse": Assert.Equal(new string(e.Input.Reverse().ToArray()), e.Output); break;
                case "sort": Assert.Equal(new string(e.Input.Order().ToArray()), e.Output); break;
                case "add": Assert.Equal(e.Input.Split(" + ").Sum(int.Parse).ToString(System.Globalization.CultureInfo.InvariantCulture), e.Output); break;
                case "upper": Assert.Equal(e.Input.ToUpperInvariant(), e.Output); break;
                case "lower": Assert.Equal(e.Input.ToLowerInvariant(), e.Output); break;
                case "copy": Assert.Equal(e.Input, e.Output); break;
                case "next-letter": Assert.Equal((char)(e.Input[0] + 1), e.Output[0]); break;
                case "count": Assert.Equal(e.Input.Count(c => c == e.Instruction[e.Instruction.IndexOf('\'', StringComparison.Ordinal) + 1]), int.Parse(e.Output, System.Globalization.CultureInfo.InvariantCulture)); break;
                default: Assert.Fail(e.Category); break;
            }
            Assert.True(System.Text.Encoding.UTF8.GetByteCount(PromptTemplate.Format(e) + e.Output) < 320, "expected System.Text.Encoding.UTF8.GetByteCount(PromptTemplate.Format(e) + e.Output) < 320");
        }
    }
}
