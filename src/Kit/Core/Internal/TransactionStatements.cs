namespace Linq2DbTestKit.Internal;

/// <summary>A savepoint statement the application sends as SQL: <c>SAVEPOINT n</c>, <c>RELEASE n</c>, <c>ROLLBACK TO n</c>; <c>SAVE TRAN n</c>, <c>ROLLBACK TRAN n</c>.</summary>
internal readonly record struct SavepointCommand(SavepointAction Action, string Name);

/// <summary>What SQL text does to transactions.</summary>
/// <param name="EndsTransaction">It begins, commits or rolls back a transaction: it would end the test's behind the kit's back.</param>
/// <param name="Savepoint">It is a savepoint statement, legitimate inside the application's own transaction.</param>
/// <param name="Statements">How many statements the text holds (T-SQL: 1 when it holds nothing but the savepoint statement).</param>
internal readonly record struct StatementControl(bool EndsTransaction, SavepointCommand? Savepoint, int Statements)
{
    public static readonly StatementControl None = new(false, null, 1);

    public static readonly StatementControl Ends = new(true, null, 1);
}

/// <summary>Tells transaction statements apart in SQL text, by each dialect's rules.</summary>
internal static class TransactionStatements
{
    static readonly string[] PostgreSqlHints = ["begin", "start", "commit", "end", "rollback", "abort", "savepoint", "release", "prepare"];

    static readonly string[] TSqlHints = ["tran", "commit", "rollback", "exec"];

    /// <summary>T-SQL's reserved words that can follow <c>ROLLBACK TRAN</c> as the next statement: then there is no savepoint name.</summary>
    static readonly HashSet<string> TSqlStatementWords = new(StringComparer.Ordinal)
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "IF", "ELSE", "BEGIN", "END", "WHILE", "RETURN", "EXEC", "EXECUTE",
        "DECLARE", "SET", "COMMIT", "ROLLBACK", "SAVE", "WITH", "TRUNCATE", "PRINT", "RAISERROR", "THROW", "CREATE", "ALTER",
        "DROP", "GO", "USE", "WAITFOR", "BREAK", "CONTINUE", "GOTO", "GRANT", "DENY", "REVOKE", "OPEN", "CLOSE", "FETCH", "DEALLOCATE",
    };

    public static StatementControl Classify(string sql, SqlDialect dialect, bool standardConformingStrings = true)
    {
        var hints = dialect == SqlDialect.PostgreSql ? PostgreSqlHints : TSqlHints;
        if (!hints.Any(hint => sql.Contains(hint, StringComparison.OrdinalIgnoreCase)))
            return StatementControl.None;

        var tokens = SqlScanner.Tokens(sql, dialect, standardConformingStrings).ToList();
        return dialect == SqlDialect.PostgreSql ? ClassifyPostgreSql(tokens) : ClassifyTSql(tokens);
    }

    /// <remarks>In PostgreSQL a transaction statement is a statement of its own: its first word says it.</remarks>
    static StatementControl ClassifyPostgreSql(List<SqlToken> tokens)
    {
        var statements = new List<List<SqlToken>>();
        var current = new List<SqlToken>();
        foreach (var token in tokens)
        {
            if (token.Kind == SqlTokenKind.Separator)
            {
                if (current.Count > 0)
                    statements.Add(current);
                current = [];
            }
            else
            {
                current.Add(token);
            }
        }

        if (current.Count > 0)
            statements.Add(current);

        SavepointCommand? savepoint = null;
        foreach (var statement in statements)
        {
            if (statement[0].Kind != SqlTokenKind.Word)
                continue;

            var word = Word(statement, 1);
            // ROLLBACK [WORK | TRANSACTION] TO [SAVEPOINT] name
            var to = word is "WORK" or "TRANSACTION" ? 2 : 1;
            switch (statement[0].Text)
            {
                case "BEGIN" or "START" or "COMMIT" or "END" or "ABORT":
                case "PREPARE" when word == "TRANSACTION":
                case "ROLLBACK" when Word(statement, to) != "TO":
                    return StatementControl.Ends with { Statements = statements.Count };
                case "ROLLBACK":
                    savepoint = Name(statement, Word(statement, to + 1) == "SAVEPOINT" ? to + 2 : to + 1, SavepointAction.Rollback, SqlDialect.PostgreSql) ?? savepoint;
                    break;
                case "SAVEPOINT":
                    savepoint = Name(statement, 1, SavepointAction.Save, SqlDialect.PostgreSql) ?? savepoint;
                    break;
                case "RELEASE":
                    savepoint = Name(statement, word == "SAVEPOINT" ? 2 : 1, SavepointAction.Release, SqlDialect.PostgreSql) ?? savepoint;
                    break;
            }
        }

        return new StatementControl(false, savepoint, Math.Max(statements.Count, 1));
    }

    /// <remarks>
    /// <para>
    /// T-SQL needs no ';' between statements, so a transaction keyword counts wherever it stands in code. Dynamic SQL
    /// runs text as statements: the string literals inside <c>EXEC( … )</c>, joined as <c>+</c> joins them, and the
    /// statement of <c>sp_executesql</c> (its first argument, or <c>@stmt</c>) are read as T-SQL too; the other strings of
    /// such a batch are data. Text the kit cannot read before it runs (a variable) is left to the server, where the
    /// scope's second transaction keeps a <c>COMMIT</c> from committing.
    /// </para>
    /// <para>
    /// A batch that creates or alters a procedure, function or trigger defines its body, and runs none of it.
    /// </para>
    /// </remarks>
    static StatementControl ClassifyTSql(List<SqlToken> tokens)
    {
        var code = tokens.Where(t => t.Kind is not SqlTokenKind.Separator).ToList();
        if (DefinesModule(code))
            return StatementControl.None;

        SavepointCommand? savepoint = null;
        var dynamicSql = new List<string>();
        for (var i = 0; i < code.Count; i++)
        {
            if (code[i].Kind is not (SqlTokenKind.Word or SqlTokenKind.QuotedName))
                continue;

            var next = Word(code, i + 1);
            switch (code[i].Kind == SqlTokenKind.QuotedName ? code[i].Text.ToUpperInvariant() : code[i].Text)
            {
                case "COMMIT" when code[i].Kind == SqlTokenKind.Word:
                case "BEGIN" when next is "TRAN" or "TRANSACTION" or "DISTRIBUTED":
                    return StatementControl.Ends;
                case "ROLLBACK" when next is "TRAN" or "TRANSACTION":
                    if (Name(code, i + 2, SavepointAction.Rollback, SqlDialect.TSql) is not { } rolledBackTo)
                        return StatementControl.Ends;
                    savepoint = rolledBackTo;
                    break;
                case "ROLLBACK" when code[i].Kind == SqlTokenKind.Word:
                    return StatementControl.Ends;
                case "SAVE" when next is "TRAN" or "TRANSACTION":
                    savepoint = Name(code, i + 2, SavepointAction.Save, SqlDialect.TSql) ?? savepoint;
                    break;
                case "EXEC" or "EXECUTE" when i + 1 < code.Count && code[i + 1] is { Kind: SqlTokenKind.Symbol, Text: "(" }:
                    dynamicSql.Add(ExecutedText(code, i + 1));
                    break;
                case "SP_EXECUTESQL":
                    if (StatementOfExecuteSql(code, i + 1) is { } statement)
                        dynamicSql.Add(statement);
                    break;
            }
        }

        if (dynamicSql.Any(text => Classify(text, SqlDialect.TSql) is { EndsTransaction: true } or { Savepoint: not null }))
            return StatementControl.Ends;

        // A savepoint statement counts as alone when the batch holds nothing else: its two keywords and its name.
        return new StatementControl(false, savepoint, savepoint is not null && code.Count == 3 ? 1 : 2);
    }

    /// <summary>Whether the batch begins with <c>CREATE</c>, <c>ALTER</c> or <c>CREATE OR ALTER</c> of a procedure, function or trigger.</summary>
    static bool DefinesModule(List<SqlToken> code)
    {
        var i = Word(code, 0) switch
        {
            "CREATE" when Word(code, 1) == "OR" && Word(code, 2) == "ALTER" => 3,
            "CREATE" or "ALTER" => 1,
            _ => -1,
        };
        return i > 0 && Word(code, i) is "PROC" or "PROCEDURE" or "FUNCTION" or "TRIGGER";
    }

    /// <summary>The text <c>EXEC ( … )</c> runs: the string literals between its parentheses, joined in order.</summary>
    static string ExecutedText(List<SqlToken> code, int open)
    {
        var text = new System.Text.StringBuilder();
        var depth = 0;
        for (var i = open; i < code.Count; i++)
        {
            if (code[i] is { Kind: SqlTokenKind.Symbol, Text: "(" })
                depth++;
            else if (code[i] is { Kind: SqlTokenKind.Symbol, Text: ")" } && --depth == 0)
                break;
            else if (code[i].Kind == SqlTokenKind.String)
                text.Append(code[i].Text);
        }

        return text.ToString();
    }

    /// <summary>The statement <c>sp_executesql</c> runs when it is written out: its first argument, or the one named <c>@stmt</c>.</summary>
    static string? StatementOfExecuteSql(List<SqlToken> code, int index)
    {
        if (index < code.Count && code[index].Kind == SqlTokenKind.String)
            return code[index].Text;
        for (var i = index; i + 2 < code.Count && code[i].Kind != SqlTokenKind.Separator; i++)
        {
            if (code[i] is { Kind: SqlTokenKind.Word, Text: "@STMT" } && code[i + 1] is { Kind: SqlTokenKind.Symbol, Text: "=" } && code[i + 2].Kind == SqlTokenKind.String)
                return code[i + 2].Text;
        }

        return null;
    }

    /// <summary>
    /// The first statement of <paramref name="sql"/> that the database refuses to run inside a transaction block
    /// (<c>CREATE DATABASE</c>, <c>VACUUM</c>, <c>CREATE INDEX CONCURRENTLY</c>, <c>ALTER SYSTEM</c>; on SQL Server
    /// <c>ALTER DATABASE</c>, <c>BACKUP</c>, <c>RESTORE</c>), as its first words; <see langword="null"/> when there is none.
    /// </summary>
    public static string? OutsideTransactionOnly(string sql, SqlDialect dialect)
    {
        var hints = dialect == SqlDialect.PostgreSql ? PostgreSqlOutsideHints : TSqlOutsideHints;
        if (!hints.Any(hint => sql.Contains(hint, StringComparison.OrdinalIgnoreCase)))
            return null;

        var words = SqlScanner.Words(sql, dialect).ToList();
        for (var i = 0; i < words.Count; i++)
        {
            if (!words[i].StartsStatement)
                continue;

            string? Next(int offset) => i + offset < words.Count && !words[i + offset].StartsStatement ? words[i + offset].Text : null;
            var statement = (words[i].Text, Next(1), Next(2), Next(3)) switch
            {
                ("CREATE" or "DROP", "DATABASE", _, _) => $"{words[i].Text} DATABASE",
                ("VACUUM", _, _, _) when dialect == SqlDialect.PostgreSql => "VACUUM",
                ("ALTER", "SYSTEM", _, _) when dialect == SqlDialect.PostgreSql => "ALTER SYSTEM",
                ("CREATE" or "DROP", "INDEX", "CONCURRENTLY", _) => $"{words[i].Text} INDEX CONCURRENTLY",
                ("CREATE", "UNIQUE", "INDEX", "CONCURRENTLY") => "CREATE UNIQUE INDEX CONCURRENTLY",
                ("REINDEX", _, "CONCURRENTLY", _) or ("REINDEX", _, _, "CONCURRENTLY") => "REINDEX CONCURRENTLY",
                ("CREATE" or "DROP", "TABLESPACE", _, _) when dialect == SqlDialect.PostgreSql => $"{words[i].Text} TABLESPACE",
                ("ALTER", "DATABASE", _, _) when dialect == SqlDialect.TSql => "ALTER DATABASE",
                ("BACKUP" or "RESTORE", _, _, _) when dialect == SqlDialect.TSql => words[i].Text,
                ("RECONFIGURE", _, _, _) when dialect == SqlDialect.TSql => "RECONFIGURE",
                _ => null,
            };
            if (statement is not null)
                return statement;
        }

        return null;
    }

    /// <summary>
    /// The first thing in <paramref name="sql"/> that PostgreSQL does only when the transaction commits, which a scope's
    /// never does: <c>NOTIFY</c> and <c>pg_notify(…)</c> (delivered on commit), <c>LISTEN</c> and <c>UNLISTEN</c> (in
    /// force from the commit); <see langword="null"/> when there is none, and always on SQL Server.
    /// </summary>
    public static string? TakesEffectOnCommit(string sql, SqlDialect dialect)
    {
        if (dialect != SqlDialect.PostgreSql || !(sql.Contains("notify", StringComparison.OrdinalIgnoreCase) || sql.Contains("listen", StringComparison.OrdinalIgnoreCase)))
            return null;

        SqlToken? previous = null;
        foreach (var token in SqlScanner.Tokens(sql, dialect))
        {
            if (previous is { Kind: SqlTokenKind.Word, Text: "PG_NOTIFY" } && token is { Kind: SqlTokenKind.Symbol, Text: "(" })
                return "pg_notify(…)";
            if (token is { Kind: SqlTokenKind.Word, StartsStatement: true, Text: "NOTIFY" or "LISTEN" or "UNLISTEN" })
                return token.Text;
            previous = token;
        }

        return null;
    }

    static readonly string[] PostgreSqlOutsideHints = ["database", "vacuum", "system", "concurrently", "tablespace"];

    static readonly string[] TSqlOutsideHints = ["database", "backup", "restore", "reconfigure"];

    static string? Word(List<SqlToken> tokens, int index) =>
        index < tokens.Count && tokens[index].Kind == SqlTokenKind.Word ? tokens[index].Text : null;

    /// <summary>The savepoint name at <paramref name="index"/>, as the server folds it; <see langword="null"/> when there is none.</summary>
    static SavepointCommand? Name(List<SqlToken> tokens, int index, SavepointAction action, SqlDialect dialect)
    {
        if (index >= tokens.Count)
            return null;

        var token = tokens[index];
        return token.Kind switch
        {
            SqlTokenKind.QuotedName => new SavepointCommand(action, token.Text),
            SqlTokenKind.Word when dialect == SqlDialect.PostgreSql => new SavepointCommand(action, token.Raw.ToLowerInvariant()),
            SqlTokenKind.Word when !TSqlStatementWords.Contains(token.Text) => new SavepointCommand(action, token.Raw),
            _ => null,
        };
    }
}
