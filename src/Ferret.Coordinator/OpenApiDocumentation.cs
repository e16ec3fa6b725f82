using Microsoft.AspNetCore.Authorization;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace Ferret.Coordinator;

/// <summary>
/// The OpenAPI document at /openapi/v1.json: a bearer security scheme (the admin key or a client token), and every
/// endpoint that needs a token says so, so a generated client or a browser of the document knows to send one.
/// </summary>
internal static class OpenApiDocumentation
{
    public const string Scheme = "bearer";

    public static void Configure(OpenApiOptions options)
    {
        options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "Ferret.NET coordinator";
            document.Info.Description = "Experiments, clients, rounds and artifact downloads. Every endpoint except enrolment needs a bearer token: "
                + "the admin key (Ferret:AdminKey) or a client token issued at enrolment; read endpoints accept either.";
            document.Components ??= new OpenApiComponents();
            document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
            document.Components.SecuritySchemes[Scheme] = new OpenApiSecurityScheme
            {
                Type = SecuritySchemeType.Http,
                Scheme = "bearer",
                Description = "The admin key, or a client token from POST /api/clients/enrol.",
            };
            return Task.CompletedTask;
        });
        options.AddOperationTransformer((operation, context, _) =>
        {
            var metadata = context.Description.ActionDescriptor.EndpointMetadata;
            if (metadata.OfType<IAuthorizeData>().Any() && !metadata.OfType<IAllowAnonymous>().Any())
            {
                operation.Security ??= [];
                operation.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Scheme, context.Document)] = [] });
            }
            return Task.CompletedTask;
        });
    }
}
