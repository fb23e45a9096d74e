namespace Linq2DbTestKit.Tests.Unit;

/// <summary>PostgreSQL's lexical rules, as the kit follows them to tell transaction statements apart.</summary>
public sealed class PostgreSqlLexingTests
{
    static StatementControl Classify(string sql, bool standardConformingStrings = true) =>
        TransactionStatements.Classify(sql, SqlDialect.PostgreSql, standardConformingStrings);

    [TestCase("COMMIT")]
    [TestCase("  commit")]
    [TestCase("END")]
    [TestCase("ABORT")]
    [TestCase("ROLLBACK")]
    [TestCase("ROLLBACK WORK")]
    [TestCase("ROLLBACK PREPARED 'x'")]
    [TestCase("BEGIN")]
    [TestCase("START TRANSACTION ISOLATION LEVEL SERIALIZABLE")]
    [TestCase("PREPARE TRANSACTION 'x'")]
    [TestCase("COMMIT PREPARED 'x'")]
    [TestCase("/* a comment */ COMMIT")]
    [TestCase("INSERT INTO t VALUES (1); COMMIT")]
    public void A_transaction_statement_is_found(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.True, sql);

    [TestCase("SELECT 'commit; rollback'")]
    [TestCase("SELECT \"commit\" FROM t")]
    [TestCase("SELECT 1 -- ; COMMIT")]
    [TestCase("SELECT $$; COMMIT$$")]
    [TestCase("SELECT $body$; COMMIT $body$")]
    [TestCase("DO $$ BEGIN PERFORM 1; END $$")]
    [TestCase("SELECT 1 /* nested /* ; COMMIT */ still a comment; COMMIT */")]
    [TestCase("SELECT begin_date, end_date FROM periods")]
    [TestCase("UPDATE t SET committed = true")]
    [TestCase("SELECT E'\\'; COMMIT; --'")]
    [TestCase("SELECT U&'d\\0061t'")]
    [TestCase("SELECT B'1010', X'1F'")]
    [TestCase("PREPARE q AS SELECT 1")]
    public void Words_inside_literals_comments_and_names_are_not_statements(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.False, sql);

    [Test]
    public void A_dollar_inside_an_identifier_is_part_of_the_name_not_a_dollar_quote() =>
        Assert.That(Classify("SELECT 1 AS x$$; COMMIT").EndsTransaction, Is.True);

    [Test]
    public void An_identifier_with_dollars_inside_does_not_start_a_dollar_quote() =>
        Assert.That(Classify("SELECT a$b$ FROM t; COMMIT; SELECT 1 AS $b$").EndsTransaction, Is.True);

    [Test]
    public void A_positional_parameter_is_not_a_dollar_quote() =>
        Assert.That(Classify("SELECT $1; COMMIT").EndsTransaction, Is.True);

    [Test]
    public void A_line_comment_ends_at_a_carriage_return() =>
        Assert.That(Classify("SELECT 1 -- note\r; COMMIT").EndsTransaction, Is.True);

    [Test]
    public void A_line_comment_ends_at_a_line_feed() =>
        Assert.That(Classify("SELECT 1 -- note\n; COMMIT").EndsTransaction, Is.True);

    [Test]
    public void A_transaction_keyword_inside_a_statement_is_a_name_there() =>
        Assert.That(Classify("SELECT 1 commit").EndsTransaction, Is.False, "PostgreSQL reads it as a column alias");

    [Test]
    public void With_standard_conforming_strings_off_a_backslash_escapes_the_quote_of_a_plain_string()
    {
        // Off: 'it\'s' is one string, and the COMMIT after it is code. On: the string ends at it\, and COMMIT is in the next string.
        const string sql = "SELECT 'it\\'s'; COMMIT; SELECT ''";
        Assert.That(Classify(sql, standardConformingStrings: false).EndsTransaction, Is.True);
        Assert.That(Classify("SELECT 'a\\'; COMMIT; --'", standardConformingStrings: false).EndsTransaction, Is.False, "the whole text is one string");
    }

    [Test]
    public void With_standard_conforming_strings_on_a_backslash_is_an_ordinary_character() =>
        Assert.That(Classify("SELECT 'a\\'; COMMIT; --'").EndsTransaction, Is.True);

    [TestCase("SELECT E'\\\\'; COMMIT")]
    [TestCase("SELECT e'\\\\'; COMMIT")]
    [TestCase("SELECT E'it\\'s'; COMMIT")]
    [TestCase("SELECT E'it''s'; COMMIT")]
    [TestCase("SELECT(E'\\\\');COMMIT")]
    public void An_escape_string_takes_backslash_escapes_whatever_the_setting(string sql) =>
        Assert.That(Classify(sql).EndsTransaction, Is.True, sql);

    [Test]
    public void A_name_ending_in_e_before_a_quote_is_a_name_and_the_string_a_plain_one() =>
        Assert.That(Classify("SELECT name'\\'; COMMIT; --'").EndsTransaction, Is.True);

    [TestCase("SAVEPOINT item_1", "Save", "item_1")]
    [TestCase("savepoint Item_1", "Save", "item_1")]
    [TestCase("SAVEPOINT \"Item 1\"", "Save", "Item 1")]
    [TestCase("RELEASE SAVEPOINT item_1", "Release", "item_1")]
    [TestCase("RELEASE item_1", "Release", "item_1")]
    [TestCase("ROLLBACK TO SAVEPOINT item_1", "Rollback", "item_1")]
    [TestCase("ROLLBACK TO item_1", "Rollback", "item_1")]
    [TestCase("ROLLBACK WORK TO SAVEPOINT item_1", "Rollback", "item_1")]
    [TestCase("ROLLBACK TRANSACTION TO item_1", "Rollback", "item_1")]
    public void Savepoint_statements_are_told_apart_with_their_name_as_the_server_folds_it(string sql, string action, string name)
    {
        var control = Classify(sql);

        Assert.That(control.EndsTransaction, Is.False);
        Assert.That(control.Savepoint, Is.EqualTo(new SavepointCommand(Enum.Parse<SavepointAction>(action), name)));
        Assert.That(control.Statements, Is.EqualTo(1));
    }

    [Test]
    public void A_savepoint_among_other_statements_is_counted_with_them() =>
        Assert.That(Classify("INSERT INTO t VALUES (1); SAVEPOINT a").Statements, Is.EqualTo(2));
}

/// <summary>Statements a database runs only outside a transaction block, told apart so that a test scope can say what to do instead.</summary>
public sealed class OutsideTransactionStatementTests
{
    const bool PostgreSql = true, TSql = false;

    static SqlDialect Dialect(bool postgreSql) => postgreSql ? SqlDialect.PostgreSql : SqlDialect.TSql;

    [TestCase("CREATE DATABASE app_copy", PostgreSql, "CREATE DATABASE")]
    [TestCase("drop database if exists app_copy", PostgreSql, "DROP DATABASE")]
    [TestCase("VACUUM ANALYZE items", PostgreSql, "VACUUM")]
    [TestCase("CREATE INDEX CONCURRENTLY ix ON items (name)", PostgreSql, "CREATE INDEX CONCURRENTLY")]
    [TestCase("CREATE UNIQUE INDEX CONCURRENTLY ix ON items (name)", PostgreSql, "CREATE UNIQUE INDEX CONCURRENTLY")]
    [TestCase("REINDEX TABLE CONCURRENTLY items", PostgreSql, "REINDEX CONCURRENTLY")]
    [TestCase("SELECT 1; ALTER SYSTEM SET work_mem = '64MB'", PostgreSql, "ALTER SYSTEM")]
    [TestCase("ALTER DATABASE CURRENT SET RECOVERY SIMPLE", TSql, "ALTER DATABASE")]
    [TestCase("BACKUP DATABASE app TO DISK = N'/tmp/app.bak'", TSql, "BACKUP")]
    [TestCase("CREATE DATABASE [app copy]", TSql, "CREATE DATABASE")]
    public void Is_told_apart(string sql, bool postgreSql, string statement) =>
        Assert.That(TransactionStatements.OutsideTransactionOnly(sql, Dialect(postgreSql)), Is.EqualTo(statement));

    [TestCase("SELECT * FROM databases", PostgreSql)]
    [TestCase("CREATE INDEX ix ON items (name)", PostgreSql)]
    [TestCase("INSERT INTO notes (text) VALUES ('CREATE DATABASE x')", PostgreSql)]
    [TestCase("SELECT 'VACUUM'", PostgreSql)]
    [TestCase("ALTER DATABASE app SET search_path = app", PostgreSql)]
    [TestCase("SELECT name FROM sys.databases", TSql)]
    [TestCase("EXEC backup_orders", TSql)]
    public void Is_not_mistaken(string sql, bool postgreSql) =>
        Assert.That(TransactionStatements.OutsideTransactionOnly(sql, Dialect(postgreSql)), Is.Null);
}

/// <summary>What PostgreSQL does only when a transaction commits, which a test's transaction never does.</summary>
public sealed class OnCommitStatementTests
{
    [TestCase("NOTIFY orders_changed", "NOTIFY")]
    [TestCase("notify orders_changed, 'paid'", "NOTIFY")]
    [TestCase("SELECT pg_notify('orders_changed', 'paid')", "pg_notify(…)")]
    [TestCase("SELECT pg_catalog.pg_notify ('orders_changed', id::text) FROM orders", "pg_notify(…)")]
    [TestCase("UPDATE orders SET paid = true; LISTEN orders_changed", "LISTEN")]
    [TestCase("UNLISTEN *", "UNLISTEN")]
    public void Is_told_apart(string sql, string what) =>
        Assert.That(TransactionStatements.TakesEffectOnCommit(sql, SqlDialect.PostgreSql), Is.EqualTo(what));

    [TestCase("SELECT 'NOTIFY x', 'pg_notify(' FROM t")]
    [TestCase("-- NOTIFY orders_changed\nSELECT 1")]
    [TestCase("SELECT notify, listen FROM settings")]
    [TestCase("INSERT INTO pg_notify_log (channel) VALUES ('x')")]
    [TestCase("CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $$ NOTIFY x $$")]
    public void Is_not_mistaken(string sql) =>
        Assert.That(TransactionStatements.TakesEffectOnCommit(sql, SqlDialect.PostgreSql), Is.Null);

    [Test]
    public void Is_nothing_on_SQL_Server() =>
        Assert.That(TransactionStatements.TakesEffectOnCommit("SELECT pg_notify('a', 'b')", SqlDialect.TSql), Is.Null);
}
