using Linq2DbTestKit.Conformance;
using Linq2DbTestKit.Internal;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using Npgsql;
using NUnit.Framework;

namespace Linq2DbTestKit.Tests.Postgres;

/// <summary>
/// Schema templates: a run whose fingerprint matches copies the prepared database of an earlier run; a changed
/// fingerprint, or the variable, builds it again; parallel runs of one family build it once; a database of the
/// template's name that the kit did not mark is neither used nor dropped.
/// </summary>
[CancelAfter(300_000)]
public sealed class SchemaTemplates
{
    static PostgreSqlDatabaseProvider Provider => PostgreSqlDatabaseProvider.Instance;

    static TestDatabaseOptions Options(string family, string fingerprint) => new()
    {
        ConnectionString = TestRun.Database.ServerConnectionString,
        SchemaTemplate = family,
        SchemaFingerprint = fingerprint,
        CheckForLeaks = false,
    };

    static async Task RunAsync(TestDatabase database, string sql)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }

    static async Task<string[]> TablesAsync(TestDatabase database)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT string_agg(table_name || ':' || (xpath('/row/c/text()', query_to_xml('SELECT count(*) AS c FROM ' || table_name, false, true, '')))[1]::text, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'", connection);
        return ((await command.ExecuteScalarAsync()) as string ?? string.Empty).Split(',', StringSplitOptions.RemoveEmptyEntries);
    }

    static async Task DropTemplateAsync(string family)
    {
        await using var admin = new NpgsqlConnection(TestRun.Database.ServerConnectionString);
        await admin.OpenAsync();
        await Provider.DropTemplateAsync(admin, TestDatabase.TemplateName(family), CancellationToken.None);
    }

    [Test]
    public async Task A_matching_fingerprint_copies_the_template_a_changed_one_or_the_variable_builds_it_again()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        try
        {
            await using (var first = await TestDatabase.CreateAsync(Provider, Options(family, "v1")))
            {
                Assert.That(first.SchemaFromTemplate, Is.False, "no template yet");
                await RunAsync(first, "CREATE TABLE colours (name text PRIMARY KEY); INSERT INTO colours VALUES ('red'), ('green')");
                await first.SaveTemplateAsync();
            }

            await using (var second = await TestDatabase.CreateAsync(Provider, Options(family, "v1")))
            {
                Assert.That(second.SchemaFromTemplate, Is.True);
                Assert.That(await TablesAsync(second), Is.EqualTo(new[] { "colours:2" }), "the schema and the set-up's seed rows, copied");
            }

            await using (var changed = await TestDatabase.CreateAsync(Provider, Options(family, "v2")))
            {
                Assert.That(changed.SchemaFromTemplate, Is.False, "a changed migration builds the template again");
                Assert.That(await TablesAsync(changed), Is.Empty, "a new, empty database to prepare");
                await RunAsync(changed, "CREATE TABLE colours (name text PRIMARY KEY); CREATE TABLE shades (name text)");
                await changed.SaveTemplateAsync();
            }

            await using (var copied = await TestDatabase.CreateAsync(Provider, Options(family, "v2")))
                Assert.That(await TablesAsync(copied), Is.EqualTo(new[] { "colours:0", "shades:0" }), "the rebuilt template");

            await using (var forced = await TestDatabase.CreateAsync(Provider, Options(family, "v2") with { RebuildTemplate = true }))
                Assert.That(forced.SchemaFromTemplate, Is.False, "TESTKIT_REBUILD_TEMPLATE builds it again although it matches");
        }
        finally
        {
            await DropTemplateAsync(family);
        }
    }

    [Test]
    public async Task Parallel_runs_of_one_family_build_the_template_once_and_the_others_copy_it()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        try
        {
            await using var builder = await TestDatabase.CreateAsync(Provider, Options(family, "p1"));
            Assert.That(builder.SchemaFromTemplate, Is.False);

            var others = Enumerable.Range(0, 2).Select(_ => Task.Run(() => TestDatabase.CreateAsync(Provider, Options(family, "p1")))).ToArray();
            await Task.Delay(300);
            Assert.That(others.Any(o => o.IsCompleted), Is.False, "the other runs wait while one builds");

            await RunAsync(builder, "CREATE TABLE things (id int)");
            await builder.SaveTemplateAsync();
            foreach (var other in others)
            {
                await using var database = await other.WaitAsync(TimeSpan.FromSeconds(120));
                Assert.That(database.SchemaFromTemplate, Is.True, "they copy what the first built");
                Assert.That(await TablesAsync(database), Is.EqualTo(new[] { "things:0" }));
            }
        }
        finally
        {
            await DropTemplateAsync(family);
        }
    }

    [Test]
    public async Task A_database_of_the_templates_name_without_the_kits_mark_is_neither_used_nor_dropped()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        var name = TestDatabase.TemplateName(family);
        await using var admin = new NpgsqlConnection(TestRun.Database.ServerConnectionString);
        await admin.OpenAsync();
        await using (var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin))
            await create.ExecuteNonQueryAsync();
        try
        {
            var error = await Assert.ThrowsAsync<TestKitConfigurationException>(() => TestDatabase.CreateAsync(Provider, Options(family, "x")));
            Assert.That(error!.Message, Does.Contain($"'{name}'").And.Contain("not a schema template of the kit's"));
            await using var exists = new NpgsqlCommand($"SELECT count(*) FROM pg_database WHERE datname = '{name}'", admin);
            Assert.That(await exists.ExecuteScalarAsync(), Is.EqualTo(1L));
        }
        finally
        {
            await using var drop = new NpgsqlCommand($"DROP DATABASE {name}", admin);
            await drop.ExecuteNonQueryAsync();
        }
    }

    [Test]
    public async Task A_copy_carries_the_databases_settings_owner_and_grants_and_is_as_prepared()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        var reader = $"tk_reader_{Guid.NewGuid():N}"[..24];
        await using var admin = new NpgsqlConnection(TestRun.Database.ServerConnectionString);
        await admin.OpenAsync();
        await using (var role = new NpgsqlCommand($"CREATE ROLE {reader}", admin))
            await role.ExecuteNonQueryAsync();
        try
        {
            await using (var built = await TestDatabase.CreateAsync(Provider, Options(family, "s1") with { CheckForLeaks = true }))
            {
                // Migrations that set the database's own settings, as real ones do.
                await RunAsync(built, $"""
                    CREATE SCHEMA app; CREATE TABLE app.notes (id int PRIMARY KEY, text text); INSERT INTO app.notes VALUES (1, 'kept');
                    ALTER DATABASE "{built.Name}" SET search_path = app, public;
                    ALTER DATABASE "{built.Name}" SET statement_timeout = '41s';
                    ALTER ROLE {reader} IN DATABASE "{built.Name}" SET work_mem = '3MB';
                    REVOKE CONNECT ON DATABASE "{built.Name}" FROM PUBLIC; GRANT CONNECT ON DATABASE "{built.Name}" TO {reader};
                    """);
                NpgsqlConnection.ClearAllPools();
                await built.RecordPreparedStateAsync();
                await built.SaveTemplateAsync();
                Assert.That(await ScalarAsync(built, "SELECT count(*) FROM notes"), Is.EqualTo(1L), "the run that built the template");
            }

            await using var copy = await TestDatabase.CreateAsync(Provider, Options(family, "s1") with { CheckForLeaks = true });
            Assert.That(copy.SchemaFromTemplate, Is.True);
            await copy.RecordPreparedStateAsync();
            Assert.That(await ScalarAsync(copy, "SELECT count(*) FROM notes"), Is.EqualTo(1L), "the copy's search_path finds app.notes");
            Assert.That(await ScalarAsync(copy, "SHOW statement_timeout"), Is.EqualTo("41s"));
            Assert.That(await ScalarAsync(copy, $"SELECT array_to_string(setconfig, ',') FROM pg_db_role_setting WHERE setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database()) AND setrole = '{reader}'::regrole"),
                Is.EqualTo("work_mem=3MB"));
            Assert.That(await ScalarAsync(copy, "SELECT datacl::text FROM pg_database WHERE datname = current_database()"), Does.Contain($"{reader}=c/").And.Not.Contain("=Tc/"));
            Assert.That(await copy.FindLeaksAsync(), Is.Null, "the untouched copy is as prepared");
        }
        finally
        {
            await DropTemplateAsync(family);
            NpgsqlConnection.ClearAllPools();
            await using var drop = new NpgsqlCommand($"DROP ROLE {reader}", admin);
            await drop.ExecuteNonQueryAsync();
        }
    }

    static async Task<object?> ScalarAsync(TestDatabase database, string sql)
    {
        await using var connection = new NpgsqlConnection(database.ConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        return await command.ExecuteScalarAsync();
    }

    [Test]
    public async Task A_run_that_waits_for_another_runs_build_says_what_it_waits_for()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        try
        {
            await using var builder = await TestDatabase.CreateAsync(Provider, Options(family, "w1"));
            var said = new System.Collections.Concurrent.ConcurrentQueue<string>();
            var waiting = Task.Run(() => TestDatabase.CreateAsync(Provider, Options(family, "w1") with { Progress = said.Enqueue }));
            await Task.Delay(2500);
            await RunAsync(builder, "CREATE TABLE things (id int)");
            await builder.SaveTemplateAsync();
            await using var copied = await waiting.WaitAsync(TimeSpan.FromSeconds(120));

            Assert.That(said, Has.Some.Match($@"^waiting \d+ s for another run on the server that builds or copies the schema template {TestDatabase.TemplateName(family)}$"));
        }
        finally
        {
            await DropTemplateAsync(family);
        }
    }

    [Test]
    public async Task No_template_is_built_on_a_throwaway_server_and_the_run_says_why()
    {
        var (binaries, searched) = LocalPostgreSqlServer.FindBinaries(Environment.GetEnvironmentVariable);
        if (binaries is null)
            Assert.Ignore($"needs PostgreSQL's server binaries; initdb and pg_ctl are not in {searched}");

        if (await ThrowawayServer.AnswersAsync("127.0.0.1", 5432, CancellationToken.None))
            Assert.Ignore("a server answers at the default address, so the kit would start none");

        // Nothing answers where the options point, and no connection string is given: the kit starts a server of its own.
        var options = new TestDatabaseOptions
        {
            ConnectionStringSource = "a test's own options",
            StartServer = ServerStart.LocalBinaries,
            SchemaTemplate = $"tests/{Guid.NewGuid():N}",
            SchemaFingerprint = "t1",
        };
        await using var database = await TestDatabase.CreateAsync(Provider, options);

        Assert.That(database.OnThrowawayServer, Is.True);
        Assert.That(database.SchemaFromTemplate, Is.False);
        Assert.That(database.TemplateStatus, Does.StartWith("no schema template: the server is a throwaway one"));
        await database.SaveTemplateAsync();
        Assert.That(database.TemplateStatus, Does.StartWith("no schema template"), "and none is saved");
    }

    [Test]
    [NonParallelizable]   // a killed run's database is any later run's to drop
    public async Task The_database_of_a_run_killed_while_it_builds_the_template_goes_at_the_next_run_which_says_so()
    {
        var family = $"tests/{Guid.NewGuid():N}";
        var ready = Path.Combine(Path.GetTempPath(), $"testkit-killed-build-{Guid.NewGuid():N}");
        try
        {
            using var child = ChildTestRun.Start(typeof(SchemaTemplates).Assembly, typeof(TemplateBuildKilled).FullName!, ready, new Dictionary<string, string>
            {
                [TemplateBuildKilled.ReadyFileVariable] = ready,
                [TemplateBuildKilled.FamilyVariable] = family,
                [Provider.ConnectionVariable] = TestRun.Database.ServerConnectionString,
            });
            var lines = await child.WaitUntilReadyAsync();
            var building = lines[0];
            await child.KillAsync(lines);
            await using (var admin = new NpgsqlConnection(TestRun.Database.ServerConnectionString))
            {
                await admin.OpenAsync();
                Assert.That(await Provider.DatabaseExistsAsync(admin, building, CancellationToken.None), Is.True, "the killed build left its database");
            }

            var said = new System.Collections.Concurrent.ConcurrentQueue<string>();
            await using (var next = await TestDatabase.CreateAsync(Provider, Options(family, "k1") with { Progress = said.Enqueue }).WaitAsync(TimeSpan.FromMinutes(1)))
            {
                Assert.That(next.SchemaFromTemplate, Is.False, "the killed run saved no template; this one builds it, with no wait for the dead");
                Assert.That(said, Has.Some.Contains("removed the database").And.Some.Contains(building));
                await using var admin = new NpgsqlConnection(TestRun.Database.ServerConnectionString);
                await admin.OpenAsync();
                Assert.That(await Provider.DatabaseExistsAsync(admin, building, CancellationToken.None), Is.False);
            }
        }
        finally
        {
            File.Delete(ready);
            await DropTemplateAsync(family);
        }
    }

    [Test]
    public void The_fingerprint_changes_when_a_migration_script_or_an_assembly_does()
    {
        var scripts = Directory.CreateTempSubdirectory("testkit-fingerprint-");
        try
        {
            File.WriteAllText(Path.Combine(scripts.FullName, "001.sql"), "CREATE TABLE a (id int);");
            var before = SchemaFingerprint.Compute(Provider, [scripts, typeof(SchemaTemplates).Assembly]);
            Assert.That(SchemaFingerprint.Compute(Provider, [scripts, typeof(SchemaTemplates).Assembly]), Is.EqualTo(before), "the same inputs, the same fingerprint");

            File.WriteAllText(Path.Combine(scripts.FullName, "001.sql"), "CREATE TABLE a (id bigint);");
            Assert.That(SchemaFingerprint.Compute(Provider, [scripts, typeof(SchemaTemplates).Assembly]), Is.Not.EqualTo(before), "a changed script");
            Assert.That(SchemaFingerprint.Compute(Provider, [scripts, typeof(TestDatabase).Assembly]), Is.Not.EqualTo(SchemaFingerprint.Compute(Provider, [scripts, typeof(SchemaTemplates).Assembly])), "another assembly");
        }
        finally
        {
            scripts.Delete(recursive: true);
        }
    }
}

/// <summary>Begins building a schema template and waits to be killed. Run only by <see cref="SchemaTemplates"/>, in a child run.</summary>
[Explicit("waits to be killed; SchemaTemplates runs it in a child test run")]
public sealed class TemplateBuildKilled
{
    public const string ReadyFileVariable = "TESTKIT_KILLED_BUILD_READY_FILE";
    public const string FamilyVariable = "TESTKIT_KILLED_BUILD_FAMILY";

    [Test]
    public async Task Builds_a_template_then_waits_to_be_killed()
    {
        var database = await TestDatabase.CreateAsync(PostgreSqlDatabaseProvider.Instance, new TestDatabaseOptions
        {
            ConnectionString = TestRun.Database.ServerConnectionString,
            SchemaTemplate = Environment.GetEnvironmentVariable(FamilyVariable),
            SchemaFingerprint = "k1",
            CheckForLeaks = false,
        });
        // The database, and the process that builds it: the parent kills this one first.
        await File.WriteAllTextAsync(Environment.GetEnvironmentVariable(ReadyFileVariable)!, $"{database.Name}\n{Environment.ProcessId}");
        await Task.Delay(Timeout.Infinite);
    }
}
