using FluentMigrator;
using FluentMigrator.Runner;
using Microsoft.Extensions.DependencyInjection;

namespace Linq2DbTestKit.Conformance.App;

/// <summary>The schema of <see cref="ShopDb"/>, applied once per run as a real project applies its migrations.</summary>
public static class ShopSchema
{
    public static Task ApplyAsync(TestDatabase database)
    {
        using var services = new ServiceCollection()
            .AddFluentMigratorCore()
            .ConfigureRunner(runner =>
            {
                _ = database.Provider.Name switch
                {
                    "postgres" => runner.AddPostgres(),
                    "sqlserver" => runner.AddSqlServer2016(),
                    _ => throw new NotSupportedException($"No migrations for {database.Provider}."),
                };
                runner.WithGlobalConnectionString(database.ConnectionString).ScanIn(typeof(ShopSchema).Assembly).For.Migrations();
            })
            .BuildServiceProvider(validateScopes: false);
        services.GetRequiredService<IMigrationRunner>().MigrateUp();
        return Task.CompletedTask;
    }
}

[Migration(2026_11_01_0001, "items and their notes")]
public sealed class CreateItems : Migration
{
    public override void Up()
    {
        Create.Table("items")
            .WithColumn("id").AsInt64().PrimaryKey("pk_items").Identity()
            .WithColumn("name").AsString(200).NotNullable().Unique("ux_items_name")
            .WithColumn("quantity").AsInt32().NotNullable().WithDefaultValue(0);

        Create.Table("item_notes")
            .WithColumn("id").AsInt64().PrimaryKey("pk_item_notes").Identity()
            .WithColumn("item_id").AsInt64().NotNullable().ForeignKey("fk_item_notes_items", "items", "id")
            .WithColumn("text").AsString(1000).NotNullable();
    }

    public override void Down()
    {
        Delete.Table("item_notes");
        Delete.Table("items");
    }
}

/// <summary>
/// Seed data every test sees, committed by the run's set-up: what real-commit tests change and the kit restores, and
/// what class-shared seeds build on. Scoped tests leave these tables alone (their identities would advance).
/// </summary>
[Migration(2026_11_25_0001, "colours and shades, seeded")]
public sealed class CreateColours : Migration
{
    public override void Up()
    {
        Create.Table("colours")
            .WithColumn("id").AsInt32().PrimaryKey("pk_colours").Identity()
            .WithColumn("name").AsString(100).NotNullable().Unique("ux_colours_name");

        Create.Table("shades")
            .WithColumn("id").AsInt32().PrimaryKey("pk_shades").Identity()
            .WithColumn("colour_id").AsInt32().NotNullable().ForeignKey("fk_shades_colours", "colours", "id")
            .WithColumn("name").AsString(100).NotNullable();

        // Written out rather than Create.Sequence: FluentMigrator's SQL Server text (INCREMENT BY before START WITH, NO CACHE)
        // is refused by Babelfish, on which this repository's SQL Server leg runs.
        Execute.Sql("CREATE SEQUENCE ticket_numbers START WITH 100 INCREMENT BY 1");

        Insert.IntoTable("colours").Row(new { name = "red" }).Row(new { name = "green" }).Row(new { name = "blue" });
        Execute.Sql("INSERT INTO shades (colour_id, name) SELECT id, CONCAT('dark ', name) FROM colours WHERE name IN ('red', 'green')");
    }

    public override void Down()
    {
        Delete.Sequence("ticket_numbers");
        Delete.Table("shades");
        Delete.Table("colours");
    }
}
