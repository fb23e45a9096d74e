using FluentMigrator;
using FluentMigrator.Runner;
using Linq2DbTestKit;
using Linq2DbTestKit.NUnit;
using Linq2DbTestKit.PostgreSql;
using LinqToDB;
using Microsoft.Extensions.DependencyInjection;
using NUnit.Framework;

namespace SchemaReuse;

/// <summary>The run: 50 migrations, 100 tables; reused across runs through a schema template.</summary>
[SetUpFixture]
public sealed class Run() : TestRun(PostgreSqlDatabaseProvider.Instance)
{
    protected override IEnumerable<object> SchemaInputs => [typeof(Run).Assembly];

    protected override Task PrepareDatabaseAsync(TestDatabase database, CancellationToken cancellationToken)
    {
        using var services = new ServiceCollection()
            .AddFluentMigratorCore()
            .ConfigureRunner(runner => runner.AddPostgres().WithGlobalConnectionString(database.ConnectionString).ScanIn(typeof(Run).Assembly).For.Migrations())
            .BuildServiceProvider(validateScopes: false);
        services.GetRequiredService<IMigrationRunner>().MigrateUp();
        return Task.CompletedTask;
    }
}

/// <summary>The first (and only) test body: writes when it began, for bench/run.</summary>
public sealed class FirstTest : DatabaseTest
{
    [Test]
    public void Begins()
    {
        if (Environment.GetEnvironmentVariable("SCHEMA_REUSE_FIRST_TEST_FILE") is { Length: > 0 } file)
            File.WriteAllText(file, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds().ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.That(Db.GetTable<Table001>().Count(), Is.Zero);
    }
}

[LinqToDB.Mapping.Table("table_001")]
public sealed class Table001
{
    [LinqToDB.Mapping.Column("id"), LinqToDB.Mapping.PrimaryKey] public long Id { get; set; }
}

/// <summary>Two tables, the second referring to the first, with an index: what a migration of a real schema looks like.</summary>
public abstract class TwoTables(int number) : Migration
{
    public override void Up()
    {
        var first = $"table_{2 * number - 1:D3}";
        var second = $"table_{2 * number:D3}";
        Create.Table(first)
            .WithColumn("id").AsInt64().PrimaryKey().Identity()
            .WithColumn("name").AsString(200).NotNullable().Indexed()
            .WithColumn("created").AsDateTimeOffset().NotNullable().WithDefault(SystemMethods.CurrentDateTimeOffset);
        Create.Table(second)
            .WithColumn("id").AsInt64().PrimaryKey().Identity()
            .WithColumn("parent_id").AsInt64().NotNullable().ForeignKey(first, "id").Indexed()
            .WithColumn("amount").AsDecimal(12, 2).Nullable();
    }

    public override void Down()
    {
        Delete.Table($"table_{2 * number:D3}");
        Delete.Table($"table_{2 * number - 1:D3}");
    }
}

[Migration(1)] public sealed class M001 : TwoTables
{
    public M001() : base(1) { }
}

[Migration(2)] public sealed class M002 : TwoTables
{
    public M002() : base(2) { }
}

[Migration(3)] public sealed class M003 : TwoTables
{
    public M003() : base(3) { }
}

[Migration(4)] public sealed class M004 : TwoTables
{
    public M004() : base(4) { }
}

[Migration(5)] public sealed class M005 : TwoTables
{
    public M005() : base(5) { }
}

[Migration(6)] public sealed class M006 : TwoTables
{
    public M006() : base(6) { }
}

[Migration(7)] public sealed class M007 : TwoTables
{
    public M007() : base(7) { }
}

[Migration(8)] public sealed class M008 : TwoTables
{
    public M008() : base(8) { }
}

[Migration(9)] public sealed class M009 : TwoTables
{
    public M009() : base(9) { }
}

[Migration(10)] public sealed class M010 : TwoTables
{
    public M010() : base(10) { }
}

[Migration(11)] public sealed class M011 : TwoTables
{
    public M011() : base(11) { }
}

[Migration(12)] public sealed class M012 : TwoTables
{
    public M012() : base(12) { }
}

[Migration(13)] public sealed class M013 : TwoTables
{
    public M013() : base(13) { }
}

[Migration(14)] public sealed class M014 : TwoTables
{
    public M014() : base(14) { }
}

[Migration(15)] public sealed class M015 : TwoTables
{
    public M015() : base(15) { }
}

[Migration(16)] public sealed class M016 : TwoTables
{
    public M016() : base(16) { }
}

[Migration(17)] public sealed class M017 : TwoTables
{
    public M017() : base(17) { }
}

[Migration(18)] public sealed class M018 : TwoTables
{
    public M018() : base(18) { }
}

[Migration(19)] public sealed class M019 : TwoTables
{
    public M019() : base(19) { }
}

[Migration(20)] public sealed class M020 : TwoTables
{
    public M020() : base(20) { }
}

[Migration(21)] public sealed class M021 : TwoTables
{
    public M021() : base(21) { }
}

[Migration(22)] public sealed class M022 : TwoTables
{
    public M022() : base(22) { }
}

[Migration(23)] public sealed class M023 : TwoTables
{
    public M023() : base(23) { }
}

[Migration(24)] public sealed class M024 : TwoTables
{
    public M024() : base(24) { }
}

[Migration(25)] public sealed class M025 : TwoTables
{
    public M025() : base(25) { }
}

[Migration(26)] public sealed class M026 : TwoTables
{
    public M026() : base(26) { }
}

[Migration(27)] public sealed class M027 : TwoTables
{
    public M027() : base(27) { }
}

[Migration(28)] public sealed class M028 : TwoTables
{
    public M028() : base(28) { }
}

[Migration(29)] public sealed class M029 : TwoTables
{
    public M029() : base(29) { }
}

[Migration(30)] public sealed class M030 : TwoTables
{
    public M030() : base(30) { }
}

[Migration(31)] public sealed class M031 : TwoTables
{
    public M031() : base(31) { }
}

[Migration(32)] public sealed class M032 : TwoTables
{
    public M032() : base(32) { }
}

[Migration(33)] public sealed class M033 : TwoTables
{
    public M033() : base(33) { }
}

[Migration(34)] public sealed class M034 : TwoTables
{
    public M034() : base(34) { }
}

[Migration(35)] public sealed class M035 : TwoTables
{
    public M035() : base(35) { }
}

[Migration(36)] public sealed class M036 : TwoTables
{
    public M036() : base(36) { }
}

[Migration(37)] public sealed class M037 : TwoTables
{
    public M037() : base(37) { }
}

[Migration(38)] public sealed class M038 : TwoTables
{
    public M038() : base(38) { }
}

[Migration(39)] public sealed class M039 : TwoTables
{
    public M039() : base(39) { }
}

[Migration(40)] public sealed class M040 : TwoTables
{
    public M040() : base(40) { }
}

[Migration(41)] public sealed class M041 : TwoTables
{
    public M041() : base(41) { }
}

[Migration(42)] public sealed class M042 : TwoTables
{
    public M042() : base(42) { }
}

[Migration(43)] public sealed class M043 : TwoTables
{
    public M043() : base(43) { }
}

[Migration(44)] public sealed class M044 : TwoTables
{
    public M044() : base(44) { }
}

[Migration(45)] public sealed class M045 : TwoTables
{
    public M045() : base(45) { }
}

[Migration(46)] public sealed class M046 : TwoTables
{
    public M046() : base(46) { }
}

[Migration(47)] public sealed class M047 : TwoTables
{
    public M047() : base(47) { }
}

[Migration(48)] public sealed class M048 : TwoTables
{
    public M048() : base(48) { }
}

[Migration(49)] public sealed class M049 : TwoTables
{
    public M049() : base(49) { }
}

[Migration(50)] public sealed class M050 : TwoTables
{
    public M050() : base(50) { }
}
