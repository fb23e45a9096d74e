using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;

namespace ProfilesApi.Data;

/// <summary>The application's linq2db context, built from the options the container registers for it.</summary>
public sealed class AppDataConnection(DataOptions<AppDataConnection> options) : DataConnection(options.Options)
{
    public ITable<Profile> Profiles => this.GetTable<Profile>();
}

[Table("profiles")]
public sealed class Profile
{
    public const int MaxNameLength = 100;

    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("name", Length = MaxNameLength), NotNull]
    public required string Name { get; set; }
}
