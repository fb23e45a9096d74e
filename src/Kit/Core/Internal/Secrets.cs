using System.Text.RegularExpressions;

namespace Linq2DbTestKit.Internal;

/// <summary>Keeps passwords out of every message and log line the kit writes.</summary>
internal static partial class Secrets
{
    public const string Mask = "***";

    /// <summary>Replaces every occurrence of <paramref name="password"/> in <paramref name="text"/> that stands as a value of its own.</summary>
    /// <remarks>
    /// An occurrence inside a longer word is not the password shown: with the password <c>postgres</c>, a path
    /// <c>/usr/lib/postgresql</c> stays readable, and with <c>x</c> the word <c>ExecuteReader</c> does. Where the password
    /// begins or ends with a character that is no letter, digit or underscore, nothing is asked of its neighbour there.
    /// </remarks>
    public static string Scrub(string text, string? password) =>
        string.IsNullOrEmpty(password) || !text.Contains(password, StringComparison.Ordinal) ? text : Occurrence(password).Replace(text, Mask);

    /// <summary>Whether <paramref name="text"/> shows <paramref name="password"/> as a value of its own (see <see cref="Scrub"/>).</summary>
    public static bool Shows(string text, string? password) =>
        !string.IsNullOrEmpty(password) && text.Contains(password, StringComparison.Ordinal) && Occurrence(password).IsMatch(text);

    // A run has one password, or a few: the last one's expression is kept.
    static Tuple<string, Regex>? _last;

    static Regex Occurrence(string password)
    {
        if (Volatile.Read(ref _last) is { } last && string.Equals(last.Item1, password, StringComparison.Ordinal))
            return last.Item2;
        var regex = Build(password);
        Volatile.Write(ref _last, Tuple.Create(password, regex));
        return regex;
    }

    static Regex Build(string password)
    {
        var before = IsWordCharacter(password[0]) ? @"(?<![\w])" : "";
        var after = IsWordCharacter(password[^1]) ? @"(?![\w])" : "";
        return new Regex(before + Regex.Escape(password) + after, RegexOptions.CultureInvariant);
    }

    static bool IsWordCharacter(char c) => char.IsLetterOrDigit(c) || c == '_';

    /// <summary>The driver's exception to attach as the inner exception, or <see langword="null"/> if any message in it shows the password.</summary>
    public static Exception? SafeInner(Exception exception, string? password)
    {
        for (Exception? current = exception; current is not null; current = current.InnerException)
        {
            if (Shows(current.Message, password))
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
