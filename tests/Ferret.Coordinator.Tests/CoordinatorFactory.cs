using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;

namespace Ferret.Coordinator.Tests;

/// <summary>The coordinator hosted in-process on a fresh round log.</summary>
internal sealed class CoordinatorFactory : WebApplicationFactory<Program>
{
    public const string AdminKey = "test-admin-key";
    public const long MaxMessageBytes = 256 * 1024;
    private readonly TempDirectory _dir = new();

    public string DatabasePath => _dir.File("coordinator.db");

    public string ArtifactsDirectory => _dir.Path;

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        builder.UseEnvironment("Production");
        builder.UseSetting("Ferret:DatabasePath", DatabasePath);
        builder.UseSetting("Ferret:AdminKey", AdminKey);
        builder.UseSetting("Ferret:ArtifactsDirectory", _dir.Path);
        builder.UseSetting("Ferret:MaxMessageBytes", MaxMessageBytes.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    public HttpClient Admin()
    {
        var c = CreateClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        return c;
    }

    public HttpClient WithToken(string token)
    {
        var c = CreateClient();
        c.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return c;
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing)
            _dir.Dispose();
    }
}
