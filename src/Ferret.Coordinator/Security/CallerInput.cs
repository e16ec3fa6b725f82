namespace Ferret.Coordinator.Security;

/// <summary>Bounds on what callers may send as names and ids: checked at the door, before anything is stored or logged.</summary>
public static class CallerInput
{
    /// <summary>Longest id (experiments and clients are "exp-" / "client-" and 12 hex digits).</summary>
    public const int MaxIdChars = 64;

    /// <summary>Longest display name or label.</summary>
    public const int MaxNameChars = 200;

    /// <summary>Longest capabilities document (JSON), over REST and the hub alike.</summary>
    public const int MaxCapabilitiesChars = 8 * 1024;

    /// <summary>An id a caller may name: 1 to 64 ASCII letters, digits, '.', '_' or '-'.</summary>
    public static bool IsId(string? id) =>
        id is { Length: > 0 and <= MaxIdChars } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or '-');

    /// <summary>How an invalid id is described in a reason without echoing it.</summary>
    public static string DescribeInvalidId(string? id) =>
        id is null ? "no experiment id" : $"an experiment id of {id.Length} characters that is not 1-{MaxIdChars} letters, digits, '.', '_' or '-'";
}
