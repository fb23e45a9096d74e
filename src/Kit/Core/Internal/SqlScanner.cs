namespace Linq2DbTestKit.Internal;

/// <summary>
/// Finds the words of SQL text that are code: not inside string literals, quoted identifiers, comments or PostgreSQL
/// dollar-quoted bodies. Enough to tell whether a statement controls transactions; not a parser.
/// </summary>
internal static class SqlScanner
{
    /// <summary>A word of code, upper-cased, and whether it is the first word of a statement (the text's first, or the first after a top-level ';').</summary>
    internal readonly record struct Word(string Text, bool StartsStatement);

    public static IEnumerable<Word> Words(string sql)
    {
        var i = 0;
        var statementStart = true;
        while (i < sql.Length)
        {
            var c = sql[i];
            if (char.IsWhiteSpace(c))
            {
                i++;
            }
            else if (c == '-' && At(sql, i + 1, '-'))
            {
                i = sql.IndexOf('\n', i) is var end && end < 0 ? sql.Length : end + 1;
            }
            else if (c == '/' && At(sql, i + 1, '*'))
            {
                i = SkipBlockComment(sql, i);
            }
            else if (c == '\'')
            {
                var escapes = i > 0 && (sql[i - 1] is 'E' or 'e') && (i < 2 || !IsWordChar(sql[i - 2]));
                i = SkipQuoted(sql, i, '\'', escapes);
                statementStart = false;
            }
            else if (c is '"' or '`')
            {
                i = SkipQuoted(sql, i, c, backslashEscapes: false);
                statementStart = false;
            }
            else if (c == '[')
            {
                i = SkipQuoted(sql, i, ']', backslashEscapes: false);
                statementStart = false;
            }
            else if (c == '$' && DollarTag(sql, i) is { } tag)
            {
                var end = sql.IndexOf(tag, i + tag.Length, StringComparison.Ordinal);
                i = end < 0 ? sql.Length : end + tag.Length;
                statementStart = false;
            }
            else if (c == ';')
            {
                i++;
                statementStart = true;
            }
            else if (IsWordChar(c))
            {
                var start = i;
                while (i < sql.Length && IsWordChar(sql[i]))
                    i++;
                yield return new Word(sql[start..i].ToUpperInvariant(), statementStart);
                statementStart = false;
            }
            else
            {
                i++;
                statementStart = false;
            }
        }
    }

    static readonly HashSet<string> ReadingStatements = new(StringComparer.Ordinal)
    {
        "SELECT", "WITH", "SHOW", "VALUES", "TABLE", "EXPLAIN", "FETCH", "SET", "RESET", "DISCARD",
        "BEGIN", "START", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE", "LISTEN", "UNLISTEN",
    };

    static readonly HashSet<string> WritingWords = new(StringComparer.Ordinal) { "INSERT", "UPDATE", "DELETE", "MERGE", "INTO", "TRUNCATE" };

    /// <summary>
    /// Whether <paramref name="sql"/> could change data: a statement that is not a query, or a query that inserts,
    /// updates, deletes, merges or selects into a table. <c>SELECT … FOR UPDATE</c> only locks, and counts as a read.
    /// </summary>
    public static bool Writes(string sql)
    {
        string? previous = null;
        foreach (var word in Words(sql))
        {
            if (word.StartsStatement && !ReadingStatements.Contains(word.Text))
                return true;
            if (WritingWords.Contains(word.Text) && !(word.Text == "UPDATE" && previous is "FOR" or "KEY"))
                return true;
            previous = word.Text;
        }

        return false;
    }

    static bool At(string sql, int index, char c) => index < sql.Length && sql[index] == c;

    static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';

    static int SkipBlockComment(string sql, int i)
    {
        // PostgreSQL nests block comments; SQL Server does too.
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

    static int SkipQuoted(string sql, int i, char close, bool backslashEscapes)
    {
        i++;
        while (i < sql.Length)
        {
            if (backslashEscapes && sql[i] == '\\')
            {
                i += 2;
            }
            else if (sql[i] == close)
            {
                // A doubled quote is an escaped quote.
                if (At(sql, i + 1, close))
                    i += 2;
                else
                    return i + 1;
            }
            else
            {
                i++;
            }
        }

        return i;
    }

    static string? DollarTag(string sql, int i)
    {
        var end = i + 1;
        while (end < sql.Length && IsWordChar(sql[end]) && !char.IsDigit(sql[i + 1]))
            end++;
        return end < sql.Length && sql[end] == '$' ? sql[i..(end + 1)] : null;
    }
}
