using System.Text.RegularExpressions;

namespace Linq2DbTestKit.Internal;

/// <summary>Keeps passwords out of every message and log line the kit writes.</summary>
internal static partial class Secrets
{
    public const string Mask = "***";

    /// <summary>Replaces every occurrence of <paramref name="password"/> in <paramref name="text"/>.</summary>
    public static string Scrub(string text, string? password) =>
        string.IsNullOrEmpty(password) ? text : text.Replace(password, Mask, StringComparison.Ordinal);

    /// <summary>The driver's exception to attach as the inner exception, or <see langword="null"/> if any message in it shows the password.</summary>
    public static Exception? SafeInner(Exception exception, string? password)
    {
        if (string.IsNullOrEmpty(password))
            return exception;

        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (current.Message.Contains(password, StringComparison.Ordinal))
                return null;
        }

        return exception;
    }

    /// <summary>
    /// Scrubs a driver's message about a connection string it could not parse. The password cannot be told apart
    /// reliably in a malformed string, so every word that follows a password keyword is masked.
    /// </summary>
    public static string ScrubUnparsed(string text, string rawConnectionString)
    {
        var keyword = PasswordKeyword().Match(rawConnectionString);
        if (!keyword.Success)
            return text;

        var rest = rawConnectionString[(keyword.Index + keyword.Length)..];
        foreach (var word in Separators().Split(rest))
        {
            var token = word.Trim().Trim('\'', '"');
            if (token.Length > 0)
                text = Regex.Replace(text, $@"(?<![\w]){Regex.Escape(token)}(?![\w])", Mask, RegexOptions.IgnoreCase);
        }

        return text;
    }

    [GeneratedRegex(@"(password|pwd)\s*=", RegexOptions.IgnoreCase)]
    private static partial Regex PasswordKeyword();

    [GeneratedRegex("[;=]")]
    private static partial Regex Separators();
}
