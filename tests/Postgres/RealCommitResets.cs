using Linq2DbTestKit.Conformance;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>
/// The reset after a real-commit session, on schemas real applications have: it restores exactly what the run prepared,
/// with none of the application's triggers firing, and never erases what leaked outside a session. Each test has a
/// database of its own, checked from outside: every row of every table, every sequence, materialized view and large object.
/// </summary>
[Parallelizable(ParallelScope.All)]
[CancelAfter(120_000)]
public sealed class RealCommitResets
{
    /// <summary>An application's table with the triggers of a real one: an audit row, an updated_at, a NOTIFY, an archive.</summary>
    const string Accounts = """
        CREATE TABLE audit_log (id bigserial PRIMARY KEY, what text NOT NULL);
        CREATE TABLE accounts (id int PRIMARY KEY, name text NOT NULL, updated_at timestamptz NOT NULL DEFAULT '2000-01-01');
        CREATE TABLE accounts_archive (id int NOT NULL, name text NOT NULL);
        CREATE FUNCTION audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log (what) VALUES (TG_OP || ' ' || TG_TABLE_NAME); RETURN NULL; END $$;
        CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.updated_at := clock_timestamp(); RETURN NEW; END $$;
        CREATE FUNCTION announce() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('accounts_changed', TG_OP); RETURN NULL; END $$;
        CREATE FUNCTION archive() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN INSERT INTO accounts_archive VALUES (OLD.id, OLD.name); RETURN OLD; END $$;
        CREATE TRIGGER accounts_audit AFTER INSERT OR UPDATE OR DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION audit();
        CREATE TRIGGER accounts_touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION touch();
        CREATE TRIGGER accounts_announce AFTER INSERT OR UPDATE OR DELETE ON accounts FOR EACH STATEMENT EXECUTE FUNCTION announce();
        CREATE TRIGGER accounts_archive AFTER DELETE ON accounts FOR EACH ROW EXECUTE FUNCTION archive();
        INSERT INTO accounts (id, name) VALUES (1, 'ada'), (2, 'grace');
        """;

    static async Task AssertAsPreparedAsync(OwnDatabase own, IReadOnlyDictionary<string, string> prepared)
    {
        var now = await own.StateAsync();
        var changed = prepared.Keys.Union(now.Keys).Where(key => prepared.GetValueOrDefault(key) != now.GetValueOrDefault(key))
            .Select(key => $"{key}: prepared [{prepared.GetValueOrDefault(key)}], now [{now.GetValueOrDefault(key)}]");
        Assert.That(changed, Is.Empty, "every table, sequence, materialized view and large object as the run prepared it");
        Assert.That(await own.Database.FindLeaksAsync(), Is.Null, "the leak check finds the database as prepared");
    }

    [Test]
    public async Task The_applications_triggers_do_not_fire_during_the_reset()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        var prepared = await own.StateAsync();

        var restored = await own.InSessionAsync(
            "UPDATE accounts SET name = 'ada lovelace' WHERE id = 1",
            "DELETE FROM accounts WHERE id = 2",
            "INSERT INTO accounts (id, name) VALUES (3, 'linus')");

        Assert.That(restored, Is.EquivalentTo(new[] { "public.accounts", "public.accounts_archive", "public.audit_log" }));
        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task A_listener_hears_nothing_from_the_reset()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        await using var listener = new NpgsqlConnection(own.Database.ConnectionString);
        await listener.OpenAsync();
        var heard = new List<string>();
        listener.Notification += (_, notification) => heard.Add(notification.Payload);

        await using (var session = await own.Database.BeginRealCommitsAsync())
        {
            await own.ExecuteAsync("UPDATE accounts SET name = 'ada lovelace' WHERE id = 1");
            await using (var listen = new NpgsqlCommand("LISTEN accounts_changed", listener))
                await listen.ExecuteNonQueryAsync();
        }

        // Anything the reset sent would have arrived with its commit, before the session's end returned.
        await using (var ping = new NpgsqlCommand("SELECT 1", listener))
            await ping.ExecuteScalarAsync();
        await listener.WaitAsync(TimeSpan.FromMilliseconds(500));
        Assert.That(heard, Is.Empty, "the reset's writes sent no NOTIFY");
    }

    [Test]
    public async Task Rows_of_an_inheritance_child_stay_in_the_child()
    {
        await using var own = await OwnDatabase.CreateAsync("""
            CREATE TABLE vehicles (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE cars (doors int NOT NULL) INHERITS (vehicles);
            INSERT INTO vehicles VALUES (1, 'bike');
            INSERT INTO cars VALUES (2, 'mini', 3);
            """);
        var prepared = await own.StateAsync();

        await own.InSessionAsync(
            "INSERT INTO vehicles VALUES (5, 'cart')",
            "UPDATE vehicles SET name = name || '!'",
            "INSERT INTO cars VALUES (6, 'van', 5)");

        Assert.That(await own.ScalarAsync("SELECT string_agg(name, ',' ORDER BY id) FROM ONLY vehicles"), Is.EqualTo("bike"));
        Assert.That(await own.ScalarAsync("SELECT string_agg(name, ',' ORDER BY id) FROM cars"), Is.EqualTo("mini"));
        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task Tables_in_a_cycle_of_foreign_keys_are_restored()
    {
        await using var own = await OwnDatabase.CreateAsync("""
            CREATE TABLE teams (id int PRIMARY KEY, name text NOT NULL, captain int);
            CREATE TABLE players (id int PRIMARY KEY, team int NOT NULL REFERENCES teams, name text NOT NULL);
            ALTER TABLE teams ADD FOREIGN KEY (captain) REFERENCES players;
            INSERT INTO teams VALUES (1, 'red', NULL);
            INSERT INTO players VALUES (10, 1, 'ann'), (11, 1, 'bob');
            UPDATE teams SET captain = 10;
            """);
        var prepared = await own.StateAsync();

        await own.InSessionAsync(
            "UPDATE teams SET captain = NULL",
            "DELETE FROM players",
            "DELETE FROM teams",
            "INSERT INTO teams VALUES (2, 'blue', NULL)",
            "INSERT INTO players VALUES (20, 2, 'cy')",
            "UPDATE teams SET captain = 20");

        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task Rows_written_with_session_replication_role_replica_are_restored()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        var prepared = await own.StateAsync();

        var restored = await own.InSessionAsync(
            "SET session_replication_role = replica; INSERT INTO accounts (id, name) VALUES (7, 'loaded'); UPDATE accounts SET name = 'bulk' WHERE id = 1");

        Assert.That(restored, Does.Contain("public.accounts"));
        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task A_sequence_another_tables_default_uses_is_rewound()
    {
        await using var own = await OwnDatabase.CreateAsync("""
            CREATE TABLE orders (id serial PRIMARY KEY, item text);
            CREATE TABLE order_lines (id int PRIMARY KEY DEFAULT nextval('orders_id_seq'), note text);
            INSERT INTO orders (item) VALUES ('first');
            """);
        var prepared = await own.StateAsync();

        await own.InSessionAsync("INSERT INTO order_lines (note) VALUES ('takes a number'), ('and another')");

        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task A_refreshed_materialized_view_and_a_large_object_made_in_a_session_are_restored()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts + "\nCREATE MATERIALIZED VIEW account_names AS SELECT name FROM accounts;");
        var prepared = await own.StateAsync();

        var restored = await own.InSessionAsync(
            "INSERT INTO accounts (id, name) VALUES (8, 'barbara')",
            "REFRESH MATERIALIZED VIEW account_names",
            "SELECT lo_from_bytea(0, 'made in a session')");

        Assert.That(restored, Does.Contain("public.account_names"));
        await AssertAsPreparedAsync(own, prepared);
    }

    [Test]
    public async Task A_large_object_or_a_refreshed_view_outside_every_session_is_a_leak()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts + "\nCREATE MATERIALIZED VIEW account_names AS SELECT name FROM accounts;");
        await own.ExecuteAsync("SELECT lo_from_bytea(0, 'leaked')");
        await own.ExecuteAsync("INSERT INTO accounts (id, name) VALUES (9, 'leaked'); REFRESH MATERIALIZED VIEW account_names");

        Assert.That(await own.Database.FindLeaksAsync(), Does.Contain("pg_largeobject_metadata: 0 rows before, 1 row now").And.Contain("public.account_names: 2 rows before, 3 rows now"));
    }

    [Test]
    public async Task Rows_committed_outside_every_session_are_reported_and_kept_by_the_next_sessions_reset()
    {
        await using var own = await OwnDatabase.CreateAsync(Accounts);
        // As a [OneTimeSetUp] would: committed outside every test scope and session.
        await own.ExecuteAsync("INSERT INTO accounts (id, name) VALUES (40, 'set-up leak')");

        await own.InSessionAsync("UPDATE accounts SET name = 'changed' WHERE id = 1");

        Assert.That(await own.ScalarAsync("SELECT name FROM accounts WHERE id = 40"), Is.EqualTo("set-up leak"), "the reset put back what the session wrote, and no more");
        Assert.That(await own.ScalarAsync("SELECT name FROM accounts WHERE id = 1"), Is.EqualTo("ada"));
        Assert.That(await own.Database.FindLeaksAsync(), Does.Contain("public.accounts: 2 rows before, 3 rows now (found when a real-commit test began"));
    }

    [TestCase("ON DELETE CASCADE")]
    [TestCase("")]
    public async Task A_leaked_child_of_a_seeded_parent_the_session_changed_is_kept_and_reported(string onDelete)
    {
        await using var own = await OwnDatabase.CreateAsync($"""
            CREATE TABLE owners (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE pets (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES owners {onDelete}, name text NOT NULL);
            INSERT INTO owners VALUES (1, 'ann');
            """);
        await own.ExecuteAsync("INSERT INTO pets VALUES (10, 1, 'leaked cat')");

        await own.InSessionAsync("UPDATE owners SET name = 'anne' WHERE id = 1", "DELETE FROM owners WHERE id = 1 AND false");

        Assert.That(await own.ScalarAsync("SELECT name FROM pets WHERE id = 10"), Is.EqualTo("leaked cat"), "no cascade of the reset took the leak away");
        Assert.That(await own.ScalarAsync("SELECT name FROM owners WHERE id = 1"), Is.EqualTo("ann"));
        Assert.That(await own.Database.FindLeaksAsync(), Does.Contain("public.pets: 0 rows before, 1 row now"));
    }

    [Test]
    public async Task A_session_that_deletes_a_seeded_parent_with_children_is_restored_children_and_all()
    {
        await using var own = await OwnDatabase.CreateAsync("""
            CREATE TABLE owners (id int PRIMARY KEY, name text NOT NULL);
            CREATE TABLE pets (id int PRIMARY KEY, owner_id int NOT NULL REFERENCES owners ON DELETE CASCADE, name text NOT NULL);
            INSERT INTO owners VALUES (1, 'ann'), (2, 'bo');
            INSERT INTO pets VALUES (10, 1, 'cat'), (11, 2, 'dog');
            """);
        var prepared = await own.StateAsync();

        await own.InSessionAsync("DELETE FROM owners WHERE id = 1", "TRUNCATE pets, owners");

        await AssertAsPreparedAsync(own, prepared);
    }
}
