using System.Net;
using System.Net.Http.Json;
using Ferret.Coordinator.Clients;

namespace Ferret.Coordinator.Tests.Api;

public sealed class EnrolmentTests : IDisposable
{
    private readonly CoordinatorFactory _factory = new();

    public void Dispose() => _factory.Dispose();

    private async Task<EnrolResponse> EnrolAsync(string name)
    {
        var admin = _factory.Admin();
        var issued = await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest("lab", 10));
        Assert.Equal(HttpStatusCode.Created, issued.StatusCode);
        var enrolment = (await issued.Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var anonymous = _factory.CreateClient();
        var enrolled = await anonymous.PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name, capabilities = new { device = "cpu", memoryGiB = 8 } });
        Assert.Equal(HttpStatusCode.OK, enrolled.StatusCode);
        return (await enrolled.Content.ReadFromJsonAsync<EnrolResponse>())!;
    }

    [Fact]
    public async Task A_device_enrols_with_a_single_use_token_and_then_authenticates_with_its_own()
    {
        var client = await EnrolAsync("edge-1");
        var me = await _factory.WithToken(client.Token).GetFromJsonAsync<ClientView>("/api/clients/me");
        Assert.Equal(client.ClientId, me!.Id);
        Assert.Equal("edge-1", me.Name);
        Assert.Equal("cpu", me.Capabilities!.Value.GetProperty("device").GetString());
    }

    [Fact]
    public async Task An_enrolment_token_cannot_be_used_twice()
    {
        var admin = _factory.Admin();
        var enrolment = (await (await admin.PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(null, null))).Content.ReadFromJsonAsync<EnrolmentResponse>())!;
        var anonymous = _factory.CreateClient();
        Assert.Equal(HttpStatusCode.OK, (await anonymous.PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name = "a" })).StatusCode);
        var again = await anonymous.PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = enrolment.Token, name = "b" });
        Assert.Equal(HttpStatusCode.Unauthorized, again.StatusCode);
        Assert.Contains("already used", await again.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Admin_calls_need_the_admin_key()
    {
        var client = await EnrolAsync("edge-2");
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.CreateClient().PostAsJsonAsync("/api/enrolments", new EnrolmentRequest(null, null))).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithToken("wrong").GetAsync("/api/clients")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await _factory.WithToken(client.Token).GetAsync("/api/clients")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await _factory.Admin().GetAsync("/api/clients")).StatusCode);
    }

    [Fact]
    public async Task A_revoked_client_is_locked_out()
    {
        var client = await EnrolAsync("edge-3");
        Assert.Equal(HttpStatusCode.NoContent, (await _factory.Admin().PostAsync($"/api/clients/{client.ClientId}/revoke", null)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await _factory.WithToken(client.Token).GetAsync("/api/clients/me")).StatusCode);
    }

    [Fact]
    public async Task Bad_enrolment_requests_get_problem_details_naming_the_field()
    {
        var response = await _factory.CreateClient().PostAsJsonAsync("/api/clients/enrol", new { enrolmentToken = "", name = "" });
        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        var body = await response.Content.ReadAsStringAsync();
        Assert.Contains("enrolmentToken", body);
        Assert.Contains("name", body);
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType!.MediaType);
    }

    [Fact]
    public async Task Health_and_the_openapi_document_are_served()
    {
        var c = _factory.CreateClient();
        Assert.Equal("Healthy", await c.GetStringAsync("/health"));
        var openapi = await c.GetStringAsync("/openapi/v1.json");
        Assert.Contains("/api/clients/enrol", openapi);
    }
}
