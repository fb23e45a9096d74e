using FluentMigrator;

namespace ProfilesApi.Migrations;

[Migration(2026_11_20_0001, "profiles")]
public sealed class CreateProfiles : Migration
{
    public override void Up() =>
        Create.Table("profiles")
            .WithColumn("id").AsInt64().PrimaryKey("pk_profiles").Identity()
            .WithColumn("name").AsString(100).NotNullable().Unique("ux_profiles_name");

    public override void Down() => Delete.Table("profiles");
}
