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
