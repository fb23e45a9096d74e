using LinqToDB;
using LinqToDB.Data;
using LinqToDB.Mapping;

namespace NotesApi.Data;

/// <summary>The API's linq2db context. Code builds it where it needs it.</summary>
public sealed class NotesDb : DataConnection
{
    /// <summary>On linq2db's default configuration, which start-up registers (<see cref="NotesDatabase.Configure"/>).</summary>
    public NotesDb()
    {
    }

    /// <summary>On a connection string from the application's configuration.</summary>
    public NotesDb(string connectionString, string provider)
        : base(NotesDatabase.Options(connectionString, provider))
    {
    }

    public ITable<NoteRow> Notes => this.GetTable<NoteRow>();

    public ITable<TagRow> Tags => this.GetTable<TagRow>();

    public ITable<NoteTagRow> NoteTags => this.GetTable<NoteTagRow>();
}

[Table("notes")]
public sealed class NoteRow
{
    public const int MaxTitleLength = 200;

    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("title", Length = MaxTitleLength), NotNull]
    public required string Title { get; set; }

    [Column("body"), NotNull]
    public string Body { get; set; } = string.Empty;

    [Column("created_at", SkipOnInsert = true)]
    public DateTimeOffset CreatedAt { get; set; }
}

[Table("tags")]
public sealed class TagRow
{
    public const int MaxNameLength = 50;

    [Column("id"), PrimaryKey, Identity]
    public long Id { get; set; }

    [Column("name", Length = MaxNameLength), NotNull]
    public required string Name { get; set; }
}

[Table("note_tags")]
public sealed class NoteTagRow
{
    [Column("note_id"), PrimaryKey]
    public long NoteId { get; set; }

    [Column("tag_id"), PrimaryKey]
    public long TagId { get; set; }
}
