using System.Text.Json;

namespace Ferret.Coordinator.Tests.Api;

/// <summary>The OpenAPI document tells a reader without a browser what each endpoint does, that it needs a token, and which fields are optional.</summary>
public sealed class OpenApiTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new(runRounds: false);

    public void Dispose() => _factory.Dispose();

    [Fact]
    public async Task Every_operation_has_a_summary_the_protected_ones_name_the_bearer_scheme_and_optional_fields_are_not_required()
    {
        using var doc = JsonDocument.Parse(await _factory.CreateClient().GetStringAsync("/openapi/v1.json"));
        var root = doc.RootElement;
        var scheme = root.GetProperty("components").GetProperty("securitySchemes").GetProperty("bearer");
        Assert.True(scheme.GetProperty("type").GetString() == "http" && scheme.GetProperty("scheme").GetString() == "bearer", $"bearer scheme: {scheme}");
        int operations = 0;
        foreach (var path in root.GetProperty("paths").EnumerateObject())
        {
            foreach (var op in path.Value.EnumerateObject())
            {
                operations++;
                Assert.True(op.Value.TryGetProperty("summary", out var summary) && summary.GetString()!.Length > 10, $"{op.Name.ToUpperInvariant()} {path.Name} has a summary");
                bool secured = op.Value.TryGetProperty("security", out var security) && security.GetArrayLength() > 0;
                bool anonymous = path.Name is "/api/clients/enrol" or "/api/sign-in" || path.Name.StartsWith("/health", StringComparison.Ordinal);
                Assert.True(secured != anonymous, $"{op.Name.ToUpperInvariant()} {path.Name}: security {(secured ? "declared" : "missing")}");
            }
        }
        Assert.True(operations >= 16, $"{operations} operations documented");
        var create = root.GetProperty("components").GetProperty("schemas").GetProperty("CreateExperimentRequest");
        var required = create.GetProperty("required").EnumerateArray().Select(e => e.GetString()).ToHashSet();
        Assert.True(required.SetEquals(["name", "algorithm", "artifact", "rounds", "fraction"]), $"required: {string.Join(", ", required)}");
    }
}
