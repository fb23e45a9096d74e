using System.Data;
using Linq2DbTestKit.Conformance;
using Microsoft.Data.SqlClient;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.SqlServer;

/// <summary>
/// What Babelfish does today where it differs from SQL Server, one test per <see cref="BabelfishDifference"/> that a test
/// of this project skips for, and the differences the kit's own SQL works around. Each runs on Babelfish only: the day
/// Babelfish changes, its test fails and says which difference to drop.
/// </summary>
[NonParallelizable]
public sealed class BabelfishDifferences
{
    static SqlConnection Open()
    {
        var connection = (SqlConnection)Outside.Open();
        return connection;
    }

    [SetUp]
    public void OnBabelfishOnly()
    {
        if (!BabelfishDifference.OnBabelfish)
            Assert.Ignore("This test pins what Babelfish does where it differs from SQL Server; the run's server is not Babelfish.");
    }

    [Test]
    public void Bulk_copy_by_column_name_finds_only_the_last_column()
    {
        using var connection = Open();
        using (var create = new SqlCommand("CREATE TABLE dbo.babelfish_bulk (id int NOT NULL, name nvarchar(20) NULL)", connection))
            create.ExecuteNonQuery();
        try
        {
            using var table = new DataTable();
            table.Columns.Add("id", typeof(int));
            table.Columns.Add("name", typeof(string));
            table.Rows.Add(1, "one");
            using var copy = new SqlBulkCopy(connection) { DestinationTableName = "dbo.babelfish_bulk" };
            copy.ColumnMappings.Add("id", "id");
            copy.ColumnMappings.Add("name", "name");

            Assert.That(() => copy.WriteToServer(table), Throws.InvalidOperationException.With.Message.Contains("does not match up with any column"),
                BabelfishDifference.BulkCopyColumnList.Description);
        }
        finally
        {
            using var drop = new SqlCommand("DROP TABLE dbo.babelfish_bulk", connection);
            drop.ExecuteNonQuery();
        }
    }

    [Test]
    public void Waitfor_is_not_supported()
    {
        using var connection = Open();
        using var command = new SqlCommand("WAITFOR DELAY '00:00:00.010'", connection);
        Assert.That(() => command.ExecuteNonQuery(), Throws.InstanceOf<SqlException>().With.Message.Contains("'WAITFOR' is not currently supported"),
            BabelfishDifference.NoWaitFor.Description);
    }

    [TestCase("SELECT CAST('x' AS int)")]
    [TestCase("SELECT no_such_column FROM items")]
    [TestCase("EXEC no_such_procedure")]
    public void An_error_SQL_Server_fails_alone_ends_the_transaction(string sql)
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        using (var failing = new SqlCommand(sql, connection, transaction))
            Assert.That(() => failing.ExecuteNonQuery(), Throws.InstanceOf<SqlException>());

        Assert.That(transaction.Connection, Is.Null, $"{BabelfishDifference.ErrorsEndTheTransaction.Description}; the driver is told");
    }

    [Test]
    public void An_unsupported_statement_ends_the_transaction_without_telling_the_driver()
    {
        using var connection = Open();
        using var transaction = connection.BeginTransaction();
        using (var failing = new SqlCommand("WAITFOR DELAY '00:00:00.010'", connection, transaction))
            Assert.That(() => failing.ExecuteNonQuery(), Throws.InstanceOf<SqlException>());

        Assert.That(transaction.Connection, Is.Not.Null, "SqlClient still holds the transaction open");
        using var count = new SqlCommand("SELECT @@TRANCOUNT", connection, transaction);
        Assert.That(count.ExecuteScalar(), Is.EqualTo(0), "the server has ended it: the kit asks @@TRANCOUNT after every failed statement for this");
    }

    [Test]
    public void A_rollback_sent_as_sql_is_not_reported_to_the_driver_and_the_next_connection_is_a_new_session()
    {
        int session;
        using (var connection = Open())
        {
            var transaction = connection.BeginTransaction();
            using (var id = new SqlCommand("SELECT @@SPID", connection, transaction))
                session = Convert.ToInt32(id.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture);
            using (var rollback = new SqlCommand("ROLLBACK TRANSACTION", connection, transaction))
                rollback.ExecuteNonQuery();
            Assert.That(transaction.Connection, Is.Not.Null, $"{BabelfishDifference.RollbackNotReported.Description}: SqlClient still holds the transaction open");
        }

        using var next = Open();
        using var nextId = new SqlCommand("SELECT @@SPID", next);
        Assert.That(Convert.ToInt32(nextId.ExecuteScalar(), System.Globalization.CultureInfo.InvariantCulture), Is.Not.EqualTo(session),
            $"{BabelfishDifference.RollbackNotReported.Description}: the pool did not keep the connection");
    }

    [Test]
    public void The_deadlock_victim_is_not_chosen_by_priority()
    {
        using var setUp = Open();
        using (var insert = new SqlCommand("CREATE TABLE dbo.babelfish_deadlock (id int PRIMARY KEY, n int); INSERT INTO dbo.babelfish_deadlock VALUES (1, 0), (2, 0)", setUp))
            insert.ExecuteNonQuery();
        try
        {
            using var low = Open();
            using var normal = Open();
            using var lowTransaction = low.BeginTransaction();
            using var normalTransaction = normal.BeginTransaction();
            new SqlCommand("SET DEADLOCK_PRIORITY LOW", low, lowTransaction).ExecuteNonQuery();
            new SqlCommand("UPDATE dbo.babelfish_deadlock SET n = 1 WHERE id = 1", low, lowTransaction).ExecuteNonQuery();
            new SqlCommand("UPDATE dbo.babelfish_deadlock SET n = 2 WHERE id = 2", normal, normalTransaction).ExecuteNonQuery();

            // The normal session waits first; the low one closes the cycle as soon as the server shows it waiting, well within
            // the second after which PostgreSQL's deadlock check of the first waiter runs.
            var normalSession = new SqlCommand("SELECT @@SPID", normal, normalTransaction).ExecuteScalar();
            var normalWaits = Task.Run(() => new SqlCommand("UPDATE dbo.babelfish_deadlock SET n = 2 WHERE id = 1", normal, normalTransaction).ExecuteNonQuery());
            using (var waiting = new SqlCommand($"SELECT COUNT(*) FROM sys.sysprocesses WHERE spid = {normalSession} AND lastwaittype LIKE 'Lock%'", setUp))
            {
                while ((int)waiting.ExecuteScalar()! == 0)
                    Thread.Sleep(10);
            }

            var lowWaits = Task.Run(() => new SqlCommand("UPDATE dbo.babelfish_deadlock SET n = 1 WHERE id = 2", low, lowTransaction).ExecuteNonQuery());

            Assert.That(() => normalWaits.GetAwaiter().GetResult(), Throws.InstanceOf<SqlException>().With.Property(nameof(SqlException.Number)).EqualTo(1205),
                $"{BabelfishDifference.DeadlockPriorityIgnored.Description}: on SQL Server the LOW session would be the victim");
            Assert.That(lowWaits.GetAwaiter().GetResult(), Is.EqualTo(1));
        }
        finally
        {
            SqlConnection.ClearAllPools();
            using var drop = new SqlCommand("DROP TABLE dbo.babelfish_deadlock", Open());
            drop.ExecuteNonQuery();
        }
    }

    [Test]
    public void Checkident_waits_for_another_transaction_that_inserted_into_the_table()
    {
        using var setUp = Open();
        using (var create = new SqlCommand("CREATE TABLE dbo.babelfish_identity (id int IDENTITY PRIMARY KEY, name nvarchar(20) NOT NULL); INSERT INTO dbo.babelfish_identity (name) VALUES (N'a')", setUp))
            create.ExecuteNonQuery();
        try
        {
            using var writer = Open();
            using var transaction = writer.BeginTransaction();
            new SqlCommand("INSERT INTO dbo.babelfish_identity (name) VALUES (N'uncommitted')", writer, transaction).ExecuteNonQuery();

            using var reseeding = Open();
            using var reseed = new SqlCommand("DBCC CHECKIDENT ('dbo.babelfish_identity', RESEED, 1) WITH NO_INFOMSGS", reseeding) { CommandTimeout = 3 };
            Assert.That(() => reseed.ExecuteNonQuery(), Throws.InstanceOf<SqlException>().With.Message.Contains("Timeout"), BabelfishDifference.CheckIdentWaits.Description);
            transaction.Rollback();
        }
        finally
        {
            SqlConnection.ClearAllPools();
            using var drop = new SqlCommand("DROP TABLE dbo.babelfish_identity", Open());
            drop.ExecuteNonQuery();
        }
    }

    [Test]
    public void Plus_adds_binary_values_as_numbers_and_binary_turns_into_no_text()
    {
        // Why the leak check's digest never joins binary values nor turns them into text (SqlServerDatabaseProvider).
        using var connection = Open();
        using var command = new SqlCommand("SELECT DATALENGTH(0x0102 + 0x0304 + 0x05), CONVERT(varchar(10), CAST(0x0102 AS varbinary(max)), 2)", connection);
        using var reader = command.ExecuteReader();
        reader.Read();
        Assert.That(reader.GetValue(0), Is.Not.EqualTo(5), "three binary values joined would be 5 bytes long");
        Assert.That(reader.GetString(1), Is.Not.EqualTo("0102"));
    }

    [Test]
    public void Sys_sequences_lists_no_sequence()
    {
        // Why a real-commit session on Babelfish rewinds no sequence: the kit finds them in sys.sequences.
        using var connection = Open();
        using var command = new SqlCommand("SELECT CASE WHEN OBJECT_ID(N'dbo.ticket_numbers') IS NOT NULL THEN 1 ELSE 0 END, (SELECT COUNT(*) FROM sys.sequences)", connection);
        using var reader = command.ExecuteReader();
        reader.Read();
        Assert.That(reader.GetInt32(0), Is.EqualTo(1), "the schema's sequence ticket_numbers exists");
        Assert.That(reader.GetInt32(1), Is.Zero, "and sys.sequences does not list it");
    }

    [Test]
    public void Alter_database_is_not_supported()
    {
        // Why the kit marks the run's database with a table, and drops it with KILL and DROP DATABASE (SqlServerDatabaseProvider).
        using var connection = Open();
        using var command = new SqlCommand($"ALTER DATABASE [{Linq2DbTestKit.NUnit.TestRun.Database.Name}] SET READ_COMMITTED_SNAPSHOT ON", connection);
        Assert.That(() => command.ExecuteNonQuery(), Throws.InstanceOf<SqlException>().With.Message.Contains("'ALTER DATABASE' is not currently supported"));
    }
}
