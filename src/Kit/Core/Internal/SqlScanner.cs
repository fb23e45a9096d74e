using System.Text;

namespace Linq2DbTestKit.Internal;

/// <summary>The SQL dialect whose lexical rules <see cref="SqlScanner"/> follows.</summary>
internal enum SqlDialect
{
    /// <summary>PostgreSQL: dollar quotes, <c>E'…'</c> escape strings, <c>$</c> inside identifiers.</summary>
    PostgreSql,

    /// <summary>T-SQL: bracketed identifiers, <c>N'…'</c>, <c>@</c>, <c>#</c> and <c>$</c> in names.</summary>
    TSql,
}

/// <summary>A token of SQL text that matters for telling what a statement does.</summary>
/// <param name="Kind">What it is.</param>
/// <param name="Text">A word in upper case; the contents of a string literal or quoted name, its quotes undone; a symbol as written.</param>
/// <param name="StartsStatement">Whether it is the first token of a statement: the text's first, or the first after a top-level ';'.</param>
/// <param name="Raw">A word as written.</param>
internal readonly record struct SqlToken(SqlTokenKind Kind, string Text, bool StartsStatement, string Raw = "");

internal enum SqlTokenKind
{
    /// <summary>A keyword or an unquoted name.</summary>
    Word,

    /// <summary>A quoted name: <c>"…"</c>, and <c>[…]</c> in T-SQL.</summary>
    QuotedName,

    /// <summary>A string literal of any kind, or a PostgreSQL dollar-quoted body.</summary>
    String,

    /// <summary>A top-level <c>;</c>.</summary>
    Separator,

    /// <summary>Anything else: numbers, operators, parameters, parentheses.</summary>
    Symbol,
}

/// <summary>
/// Splits SQL text into the tokens that are code, skipping comments and quoted identifiers by the exact lexical rules
/// of each dialect. Enough to tell whether a statement controls transactions or writes; not a parser.
/// </summary>
/// <remarks>
/// PostgreSQL (<c>scan.l</c>): <c>--</c> comments end at a line feed or carriage return; block comments nest; an
/// identifier continues with <c>$</c>, so <c>x$$</c> is a name and not a dollar quote; a dollar quote starts only where
/// a token starts and its tag has no <c>$</c>; <c>E'…'</c> strings take backslash escapes, and so do plain strings when
/// <c>standard_conforming_strings</c> is off; <c>U&amp;'…'</c>, <c>B'…'</c>, <c>X'…'</c> and <c>N'…'</c> quote as plain strings.
/// T-SQL: <c>--</c> comments end at a line feed or carriage return; block comments nest; <c>[…]</c> and <c>"…"</c> quote
/// names; <c>N'…'</c> quotes as a plain string; names may hold <c>@</c>, <c>#</c> and <c>$</c>; nothing else quotes.
/// </remarks>
internal static class SqlScanner
{
    public static IEnumerable<SqlToken> Tokens(string sql, SqlDialect dialect, bool standardConformingStrings = true)
    {
        var i = 0;
        var statementStart = true;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (IsSpace(c))
            {
                i++;
            }
            else if (c == '-' && At(sql, i + 1, '-'))
            {
                while (i < sql.Length && sql[i] is not ('\n' or '\r'))
                    i++;
            }
            else if (c == '/' && At(sql, i + 1, '*'))
            {
                i = SkipBlockComment(sql, i);
            }
            else if (c == '\'')
            {
                var backslashes = dialect == SqlDialect.PostgreSql && !standardConformingStrings;
                yield return Literal(sql, ref i, backslashes, statementStart);
                statementStart = false;
            }
            else if (c == '"')
            {
                yield return QuotedName(sql, ref i, '"', statementStart);
                statementStart = false;
            }
            else if (c == '[' && dialect == SqlDialect.TSql)
            {
                yield return QuotedName(sql, ref i, ']', statementStart);
                statementStart = false;
            }
            else if (c == '$' && dialect == SqlDialect.PostgreSql && DollarTag(sql, i) is { } tag)
            {
                var end = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                var bodyEnd = end < 0 ? sql.Length : end;
                yield return new SqlToken(SqlTokenKind.String, sql[(i + tag.Length)..bodyEnd], statementStart);
                i = end < 0 ? sql.Length : end + tag.Length;
                statementStart = false;
            }
            else if (c == ';')
            {
                i++;
                yield return new SqlToken(SqlTokenKind.Separator, ";", false);
                statementStart = true;
            }
            else if (StartsWord(c, dialect))
            {
                var start = i;
                while (i < sql.Length && ContinuesWord(sql[i], dialect))
                    i++;
                var word = sql[start..i];

                // A one-letter prefix right before a quote makes a string of another kind: E'…', N'…', B'…', X'…'; U&'…'.
                if (i < sql.Length && sql[i] == '\'' && word.Length == 1)
                {
                    var prefix = char.ToUpperInvariant(word[0]);
                    var backslashes = dialect == SqlDialect.PostgreSql && (prefix == 'E' || !standardConformingStrings && prefix is 'N');
                    if (dialect == SqlDialect.PostgreSql ? prefix is 'E' or 'N' or 'B' or 'X' : prefix is 'N')
                    {
                        yield return Literal(sql, ref i, backslashes, statementStart);
                        statementStart = false;
                        continue;
                    }
                }

                if (dialect == SqlDialect.PostgreSql && word is "U" or "u" && At(sql, i, '&') && i + 1 < sql.Length && sql[i + 1] is '\'' or '"')
                {
                    i++;
                    if (sql[i] == '"')
                    {
                        yield return QuotedName(sql, ref i, '"', statementStart);
                    }
                    else
                    {
                        yield return Literal(sql, ref i, backslashes: false, statementStart);
                    }

                    statementStart = false;
                    continue;
                }

                yield return new SqlToken(SqlTokenKind.Word, word.ToUpperInvariant(), statementStart, word);
                statementStart = false;
            }
            else
            {
                // Numbers, operators, parameters ($1, :name, ?), parentheses: code, but no word.
                var start = i;
                i++;
                if (char.IsDigit(c) || (c == '$' && dialect == SqlDialect.PostgreSql))
                {
                    while (i < sql.Length && (char.IsLetterOrDigit(sql[i]) || sql[i] is '_' or '.'))
                        i++;
                }

                yield return new SqlToken(SqlTokenKind.Symbol, sql[start..i], statementStart);
                statementStart = false;
            }
        }
    }

    /// <summary>The words of code, in order, with whether each starts a statement.</summary>
    public static IEnumerable<SqlToken> Words(string sql, SqlDialect dialect, bool standardConformingStrings = true) =>
        Tokens(sql, dialect, standardConformingStrings).Where(token => token.Kind == SqlTokenKind.Word);

    static readonly HashSet<string> ReadingStatements = new(StringComparer.Ordinal)
    {
        "SELECT", "WITH", "SHOW", "VALUES", "TABLE", "EXPLAIN", "FETCH", "SET", "RESET", "DISCARD",
        "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "LISTEN", "UNLISTEN", "DECLARE", "PRINT",
    };

    static readonly HashSet<string> WritingWords = new(StringComparer.Ordinal) { "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "TRUNCATE" };

    /// <summary>
    /// Whether <paramref name="sql"/> could change data: a statement that is not a query, or a query that inserts,
    /// updates, deletes, merges or selects into a table. <c>SELECT … FOR UPDATE</c> only locks, and counts as a read.
    /// A query that calls a function that writes counts as a read: the text cannot tell.
    /// </summary>
    public static bool Writes(string sql, SqlDialect dialect = SqlDialect.PostgreSql)
    {
        string? previous = null;
        foreach (var word in Words(sql, dialect))
        {
            if (word.StartsStatement && !ReadingStatements.Contains(word.Text))
                return true;
            if (WritingWords.Contains(word.Text) && !(word.Text == "UPDATE" && previous is "FOR" or "KEY"))
                return true;
            previous = word.Text;
        }

        return false;
    }

    static SqlToken Literal(string sql, ref int i, bool backslashes, bool statementStart)
    {
        var contents = new StringBuilder();
        i++;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (backslashes && c == '\\' && i + 1 < sql.Length)
            {
                contents.Append(sql[i + 1]);
                i += 2;
            }
            else if (c == '\'')
            {
                if (At(sql, i + 1, '\''))
                {
                    contents.Append('\'');
                    i += 2;
                }
                else
                {
                    i++;
                    break;
                }
            }
            else
            {
                contents.Append(c);
                i++;
            }
        }

        return new SqlToken(SqlTokenKind.String, contents.ToString(), statementStart);
    }

    static bool IsSpace(char c) => c is ' ' or '\t' or '\n' or '\r' or '\f' or '\v' || char.IsWhiteSpace(c);

    static bool At(string sql, int index, char c) => index < sql.Length && sql[index] == c;

    static bool StartsWord(char c, SqlDialect dialect) =>
        char.IsLetter(c) || c == '_' || c > 127 || (dialect == SqlDialect.TSql && c is '@' or '#');

    static bool ContinuesWord(char c, SqlDialect dialect) =>
        char.IsLetterOrDigit(c) || c is '_' or '$' || c > 127 || (dialect == SqlDialect.TSql && c is '@' or '#');

    static int SkipBlockComment(string sql, int i)
    {
        // PostgreSQL and SQL Server both nest block comments.
        var depth = 0;
        while (i < sql.Length)
        {
            if (sql[i] == '/' && At(sql, i + 1, '*'))
            {
                depth++;
                i += 2;
            }
            else if (sql[i] == '*' && At(sql, i + 1, '/'))
            {
                depth--;
                i += 2;
                if (depth == 0)
                    return i;
            }
            else
            {
                i++;
            }
        }

        return i;
    }

    /// <summary>A quoted name from its opening quote at <paramref name="i"/>; a doubled closing quote stands for one.</summary>
    static SqlToken QuotedName(string sql, ref int i, char close, bool statementStart)
    {
        var name = new StringBuilder();
        i++;
        while (i < sql.Length)
        {
            if (sql[i] == close)
            {
                if (At(sql, i + 1, close))
                {
                    name.Append(close);
                    i += 2;
                    continue;
                }

                i++;
                break;
            }

            name.Append(sql[i]);
            i++;
        }

        return new SqlToken(SqlTokenKind.QuotedName, name.ToString(), statementStart);
    }

    /// <summary>The dollar-quote tag starting at <paramref name="i"/>: <c>$$</c> or <c>$tag$</c>, the tag a name without <c>$</c>.</summary>
    static string? DollarTag(string sql, int i)
    {
        var end = i + 1;
        if (end < sql.Length && (char.IsLetter(sql[end]) || sql[end] == '_' || sql[end] > 127))
        {
            while (end < sql.Length && (char.IsLetterOrDigit(sql[end]) || sql[end] == '_' || sql[end] > 127))
                end++;
        }

        return end < sql.Length && sql[end] == '$' ? sql[i..(end + 1)] : null;
    }
}
