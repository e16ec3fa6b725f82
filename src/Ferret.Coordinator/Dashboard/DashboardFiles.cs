using System.IO.Compression;
using Microsoft.AspNetCore.ResponseCompression;
using Microsoft.AspNetCore.StaticFiles;
using Microsoft.Extensions.FileProviders;

namespace Ferret.Coordinator.Dashboard;

/// <summary>
/// Serves the dashboard at <c>/</c>: the page, one script and one stylesheet, bundled at build time from
/// <c>Dashboard/</c> and embedded in this assembly, so the coordinator serves it from any working folder and
/// fetches nothing at run time. The page itself is public; every view it shows needs an observer or admin key.
/// </summary>
public static class DashboardFiles
{
    private const string ResourcePrefix = "Ferret.Coordinator.Dashboard";

    // No inline script or style, no third-party origin: only this coordinator ('self' covers its hub's WebSocket).
    private const string ContentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

    public static bool IsDashboardPath(PathString path) =>
        !path.StartsWithSegments("/api", StringComparison.Ordinal) && !path.StartsWithSegments("/hubs", StringComparison.Ordinal);

    public static IServiceCollection AddDashboard(this IServiceCollection services)
    {
        // Three small files: spend the CPU once per request on the smallest encoding.
        services.Configure<BrotliCompressionProviderOptions>(o => o.Level = CompressionLevel.Optimal);
        services.Configure<GzipCompressionProviderOptions>(o => o.Level = CompressionLevel.Optimal);
        return services.AddResponseCompression(o => o.MimeTypes = ["text/html", "text/css", "text/javascript", "application/javascript"]);
    }

    public static WebApplication UseDashboard(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        var files = new EmbeddedFileProvider(typeof(DashboardFiles).Assembly, ResourcePrefix);
        if (!files.GetFileInfo("index.html").Exists)
        {
            app.MapGet("/", () => TypedResults.Text("This coordinator was built without its dashboard (-p:FerretDashboard=false); the API is under /api.", statusCode: 404))
                .AllowAnonymous().ExcludeFromDescription();
            return app;
        }
        // Only the dashboard's own files are compressed: API answers carry secrets and stay out of reach of BREACH-style guessing.
        app.UseWhen(c => IsDashboardPath(c.Request.Path), b => b.UseResponseCompression());
        app.UseDefaultFiles(new DefaultFilesOptions { FileProvider = files });
        app.UseStaticFiles(new StaticFileOptions
        {
            FileProvider = files,
            ContentTypeProvider = new FileExtensionContentTypeProvider(),
            OnPrepareResponse = c =>
            {
                var headers = c.Context.Response.Headers;
                headers.CacheControl = "no-cache"; // revalidate by ETag: a rebuilt coordinator serves its new page at once
                headers.ContentSecurityPolicy = ContentSecurityPolicy;
                headers.XContentTypeOptions = "nosniff";
                headers["Referrer-Policy"] = "no-referrer";
                headers.XFrameOptions = "DENY";
            },
        });
        return app;
    }
}
